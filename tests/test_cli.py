"""The `rollout` CLI the way CI and scripts use it, against the dev server, a worker process and the
real local cluster: exit codes, JSON status, visibility listing, promote/abort refusals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from localcluster.behaviour import declare_images
from models.status import Phase, RolloutStatus
from tests.helpers import canary_document

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def cli(dev_server, worker_processes, unique, tmp_path):
    queue = f"cli-{unique}"
    worker_processes(dev_server.address, queue)
    env = {**os.environ, "TEMPORAL_ADDRESS": dev_server.address, "ROLLOUT_TASK_QUEUE": queue,
           "TEMPORAL_UI": dev_server.ui_url, "ROLLOUT_USER": "ci-bot"}

    def run(*args: str, timeout: float = 180, **overrides: str) -> subprocess.CompletedProcess:
        result = subprocess.run([sys.executable, "-m", "starters.cli", *args], capture_output=True, text=True,
                                cwd=REPO, env={**env, **overrides}, timeout=timeout)
        assert "Traceback" not in result.stderr, result.stderr
        return result

    def spec(**kwargs) -> str:
        path = tmp_path / f"{kwargs.get('name', 'spec')}.yaml"
        path.write_text(yaml.safe_dump(canary_document(**kwargs)))
        return str(path)

    run.spec = spec
    return run


def wait_for(predicate, timeout: float = 60, what: str = ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_start_wait_exit_codes(cli, workload, kube_api, unique):
    healthy = cli.spec(name=f"ok-{unique}", namespace=workload, deployment="web", image="registry.local/web:2.1.0",
                       steps=[{"setWeight": 50}, {"setWeight": 100}])
    result = cli("start", "-f", healthy, "--wait")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"rollout/test/ok-{unique}: Healthy" in result.stdout
    assert "/namespaces/default/workflows/rollout%2Ftest%2Fok-" in result.stdout
    assert "weight-set       50% (2 canary / 2 stable)" in result.stdout

    bad_image = f"registry.local/web:never-{unique}"
    declare_images(client.CoreV1Api(kube_api), {bad_image: {"ready": "never"}})
    degraded = cli.spec(name=f"bad-{unique}", namespace=workload, deployment="web", image=bad_image,
                        progress_deadline_seconds=10, steps=[{"setWeight": 50}, {"setWeight": 100}])
    result = cli("start", "-f", degraded, "--wait")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Degraded ProgressDeadlineExceeded" in result.stdout

    invalid = cli.spec(name=f"inv-{unique}", namespace=workload, deployment="web", image="registry.local/web",
                       steps=[{"setWeight": 50}])
    result = cli("start", "-f", invalid, "--wait")
    assert result.returncode == 2 and "spec.image" in result.stderr
    listed = json.loads(cli("list", "--json").stdout)
    assert f"rollout/test/inv-{unique}" not in {row["rolloutId"] for row in listed}, "nothing was started"


def test_status_list_promote_abort_and_refusals(cli, workload, unique):
    spec = cli.spec(name=f"web-{unique}", namespace=workload, deployment="web", image="registry.local/web:2.2.0",
                    steps=[{"setWeight": 25}, {"pause": {}}, {"setWeight": 100}])
    rid = f"rollout/test/web-{unique}"
    started = cli("start", "-f", spec)
    assert started.returncode == 0 and f"started {rid}" in started.stdout

    again = cli("start", "-f", spec)  # the same spec again (a CI retry): follows the running one
    assert again.returncode == 0 and "already running this very spec" in again.stdout
    other = cli.spec(name=f"web-{unique}", namespace=workload, deployment="web", image="registry.local/web:2.2.1",
                     steps=[{"setWeight": 25}, {"pause": {}}, {"setWeight": 100}])
    different = cli("start", "-f", other)  # another spec for the same rollout ID: the concurrency policy says no
    assert different.returncode == 5 and "already running" in different.stderr

    def paused():
        result = cli("status", rid, "--json")
        assert result.returncode == 0, result.stderr
        status = RolloutStatus.model_validate_json(result.stdout)  # the output is the status model
        return status if status.phase is Phase.PAUSED else None

    status = wait_for(paused, what="Paused")
    assert (status.current_step, status.canary_weight, status.reason) == (1, 25, "WaitingForPromote")
    raw = json.loads(cli("status", rid, "--json").stdout)
    assert raw["rolloutId"] == rid and raw["phase"] == "Paused" and "canaryWeight" in raw

    def listed():
        rows = json.loads(cli("list", "--phase", "Paused", "--environment", "test", "--json").stdout)
        return [row for row in rows if row["rolloutId"] == rid]

    [row] = wait_for(listed, what="rollout list --phase Paused")
    assert (row["strategy"], row["step"], row["execution"]) == ("canary", 1, "RUNNING")
    assert rid in cli("list", "--phase", "Paused").stdout

    watched = cli("status", rid, "--watch", "--timeout", "2")
    assert watched.returncode == 3

    assert cli("abort", rid).returncode == 2  # --reason is required
    human = cli("status", f"test/web-{unique}")
    assert human.returncode == 0 and f"rollout promote {rid}" in human.stdout

    promoted = cli("promote", rid)
    assert promoted.returncode == 0 and "promote" in promoted.stdout
    finished = cli("status", rid, "--watch", "--timeout", "90")
    assert finished.returncode == 0 and "Healthy" in finished.stdout
    status = RolloutStatus.model_validate_json(cli("status", rid, "--json").stdout)
    assert [h.by for h in status.history if h.event == "promoted"] == ["ci-bot"]

    refused = cli("promote", rid)
    assert refused.returncode == 5 and "refused" in refused.stderr
    refused = cli("abort", rid, "--reason", "too late")
    assert refused.returncode == 5


def test_user_mistakes_get_one_line_and_their_own_exit_code(cli):
    missing = cli("status", "rollout/test/no-such-rollout")
    assert missing.returncode == 4 and missing.stderr.strip() == "rollout: no rollout rollout/test/no-such-rollout"
    malformed = cli("promote", "not-an-id")
    assert malformed.returncode == 2 and "rollout/<environment>/<name>" in malformed.stderr
    unreachable = cli("status", "rollout/test/x", TEMPORAL_ADDRESS="127.0.0.1:1")
    assert unreachable.returncode == 6 and "cannot reach Temporal at 127.0.0.1:1" in unreachable.stderr
    assert len(unreachable.stderr.strip().splitlines()) == 1


def test_retry_and_supersede(cli, workload, unique):
    steps = [{"setWeight": 25}, {"pause": {}}, {"setWeight": 100}]
    spec = cli.spec(name=f"re-{unique}", namespace=workload, deployment="web", image="registry.local/web:2.3.0",
                    steps=steps)
    rid = f"rollout/test/re-{unique}"

    def phase(expected: str):
        return wait_for(lambda: RolloutStatus.model_validate_json(cli("status", rid, "--json").stdout).phase.value
                        == expected, what=expected)

    assert cli("start", "-f", spec).returncode == 0
    phase("Paused")
    assert cli("retry", rid).returncode == 5, "a running rollout is not retried"
    assert cli("abort", rid, "--reason", "flaky dependency").returncode == 0
    phase("Degraded")

    retried = cli("retry", rid)
    assert retried.returncode == 0 and f"started {rid}" in retried.stdout
    phase("Paused")  # the same spec again, from the first step
    assert cli("promote", rid).returncode == 0
    assert cli("status", rid, "--watch", "--timeout", "90").returncode == 0
    assert cli("retry", rid).returncode == 5, "a Healthy rollout is not retried"
    assert cli("retry", "rollout/test/never-started").returncode == 4

    # concurrencyPolicy: supersede — a new start aborts the running one cleanly, then starts.
    with open(spec) as f:
        document = yaml.safe_load(f)
    document["spec"]["concurrencyPolicy"] = "supersede"
    # The same spec started again after it ended Healthy (a retried CI job): one rollout, not two.
    repeated = cli("start", "-f", spec)
    assert repeated.returncode == 0 and "already ran this very spec and ended Healthy" in repeated.stdout
    runs = len([row for row in json.loads(cli("list", "--json").stdout) if row["rolloutId"] == rid])
    assert cli("start", "-f", spec, "--again").returncode == 0
    phase("Paused")
    attached = cli("start", "-f", spec)  # and while it runs: the second start follows the first
    assert attached.returncode == 0 and "is already running this very spec" in attached.stdout
    assert wait_for(lambda: len([row for row in json.loads(cli("list", "--json").stdout)
                                 if row["rolloutId"] == rid]) == runs + 1, what="exactly one more run")
    document["spec"]["image"] = "registry.local/web:2.4.0"
    newer = Path(spec).with_name("newer.yaml")
    other = dict(document, spec=dict(document["spec"], strategy={"rollingUpdate": {}}))
    newer.write_text(yaml.safe_dump(other))
    changed = cli("start", "-f", str(newer))
    assert changed.returncode == 5 and "running as canary: changing its strategy to rollingUpdate" in changed.stderr
    newer.write_text(yaml.safe_dump(document))
    superseding = cli("start", "-f", str(newer))
    assert superseding.returncode == 0, superseding.stderr
    assert f"superseded {rid}: the running rollout ended Degraded RolloutAborted" in superseding.stdout
    status = RolloutStatus.model_validate_json(cli("status", rid, "--json").stdout)
    assert status.image == "registry.local/web:2.4.0"
    executions = [row for row in json.loads(cli("list", "--json").stdout) if row["rolloutId"] == rid]
    assert len(executions) >= 3


def test_a_healthy_spec_started_again_is_checked_against_its_target(cli, workload, kube_api, unique):
    """A CI job re-run after the rollout ended Healthy: the target is asked what it runs now. Still that
    version: nothing starts, and the answer says what was checked. Rolled back (or changed) since: the
    answer names the drift and a new run puts the spec's version back."""
    image = "registry.local/web:2.7.0"
    spec = cli.spec(name=f"drift-{unique}", namespace=workload, deployment="web", image=image,
                    steps=[{"setWeight": 50}, {"setWeight": 100}])
    rid = f"rollout/test/drift-{unique}"
    assert cli("start", "-f", spec, "--wait").returncode == 0

    unchanged = cli("start", "-f", spec, "--wait")
    assert unchanged.returncode == 0, unchanged.stdout + unchanged.stderr
    assert "already ran this very spec and ended Healthy" in unchanged.stdout
    assert f"checked just now: deployment {workload}/web runs {image} (4/4 ready; 4 pods of template " in unchanged.stdout
    assert " run it); not started again" in unchanged.stdout, unchanged.stdout
    runs = [row for row in json.loads(cli("list", "--json").stdout) if row["rolloutId"] == rid]
    assert len(runs) == 1, "nothing was started"

    # No worker reads the target in time (none polls this queue): asked again, then refused, nothing started —
    # a busy worker is no drift, and a new run would ask every gate again
    unread = cli("start", "-f", spec, "--json", ROLLOUT_TASK_QUEUE=f"nobody-{unique}", ROLLOUT_OBSERVE_TIMEOUT="1.5")
    assert unread.returncode == 8, unread.stdout + unread.stderr
    assert f"{rid}: what its target runs could not be read (" in unread.stderr, unread.stderr
    assert "3 times; nothing started: run it again, or --again to start anew" in unread.stderr
    runs = [row for row in json.loads(cli("list", "--json").stdout) if row["rolloutId"] == rid]
    assert len(runs) == 1, "nothing was started"

    apps = client.AppsV1Api(kube_api)  # someone puts the old version back by hand
    apps.patch_namespaced_deployment("web", workload, {"spec": {"template": {"spec": {"containers": [
        {"name": "app", "image": "registry.local/web:1.0.0"}]}}}})
    drifted = cli("start", "-f", spec, "--wait", "--json")
    assert drifted.returncode == 0, drifted.stdout + drifted.stderr
    assert (f"but deployment {workload}/web now runs registry.local/web:1.0.0" in drifted.stderr
            and "starting it anew" in drifted.stderr), drifted.stderr  # --json: stdout is the JSON, why on stderr
    assert RolloutStatus.model_validate_json(drifted.stdout.strip().splitlines()[-1]).phase.value == "Healthy"
    assert apps.read_namespaced_deployment("web", workload).spec.template.spec.containers[0].image == image
    runs = [row for row in json.loads(cli("list", "--json").stdout) if row["rolloutId"] == rid]
    assert len(runs) == 2, "one new run"

    apps.delete_namespaced_deployment("web", workload)  # gone: the observer says NotFound, a drift
    gone = cli("start", "-f", spec)
    assert gone.returncode == 0 and f"but its target is not there (deployment {workload}/web" in gone.stdout, \
        gone.stdout + gone.stderr
    assert "starting it anew" in gone.stdout


def test_a_decision_the_rollout_does_not_carry_is_refused_naming_what_it_takes(cli, workload, unique):
    """A blue-green has no setWeight handler at all (each workflow carries only its decisions): the CLI
    says so in one line, exit 2, and the rollout is untouched."""
    spec = cli.spec(name=f"bgw-{unique}", namespace=workload, deployment="web", image="registry.local/web:3.1.0",
                    strategy={"blueGreen": {"activeService": "web", "previewService": "web-preview",
                                            "autoPromotionEnabled": False, "abortScaleDownDelaySeconds": 0}})
    rid = f"rollout/test/bgw-{unique}"
    assert cli("start", "-f", spec).returncode == 0
    wait_for(lambda: RolloutStatus.model_validate_json(cli("status", rid, "--json").stdout).phase.value == "Paused",
             what="waiting for promote")
    refused = cli("set-weight", rid, "10")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "a blueGreen rollout has no setWeight decision (it takes: abort, approve, pause, promote, reject, " \
           "resume, skipAnalysis)" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert cli("abort", rid, "--reason", "done").returncode == 0
    assert cli("status", rid, "--watch", "--timeout", "90").returncode == 1  # Degraded: aborted
