"""The GitHub Actions example (examples/ci/github-actions-pipeline.yml), run for real: its `run:` steps
in bash as the runner runs them (`bash -e`), with the variables GitHub sets, against the dev server and
three local clusters — twice at once, as a re-run job does while the first still waits."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import yaml

from models.status import Phase, RolloutStatus
from tests.helpers import eventually
from tests.pipeline_helpers import pipeline_document, stage

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "ci" / "github-actions-pipeline.yml"
OLD = "registry.local/web:1.0.0"


def steps() -> dict[str, str]:
    workflow = yaml.safe_load(EXAMPLE.read_text())
    job = workflow["jobs"]["deliver"]
    assert workflow[True]["push"]["branches"] == ["main"]  # `on:` reads as True in YAML 1.1
    assert workflow["concurrency"]["cancel-in-progress"] is False, "a running delivery is never cancelled"
    return {step["id"]: step["run"] for step in job["steps"] if "id" in step} | {
        "summary": next(s["run"] for s in job["steps"] if s.get("name") == "Summary")}


def test_the_example_parses_and_names_the_real_commands():
    run = steps()
    assert set(run) >= {"bundle", "deliver", "summary"}
    for text in run.values():
        for line in text.splitlines():
            words = line.split()
            if words[:1] == ["rollout"]:  # every rollout call is one the CLI takes
                help_ = subprocess.run([sys.executable, "-m", "starters.cli", *words[1:3], "--help"],
                                       capture_output=True, text=True, cwd=REPO)
                assert help_.returncode == 0, line
                for flag in (w for w in words if w.startswith("--")):
                    assert flag in help_.stdout, f"{line}: {flag} is not an option of rollout {' '.join(words[1:3])}"


async def test_the_example_delivers_and_a_rerun_attaches(dev_server, fleet, fleet_apis, fleet_worker, registry,
                                                          tmp_path, unique):
    from localcluster.workload import deploy

    sha = (unique * 5)[:40]
    tag = sha[:12]
    digest = registry.push("shop/web", tag)
    ns = {"dev": f"cd-{unique}", "prod": f"cp-{unique}"}
    deploy(fleet_apis[0], ns["dev"], "web", OLD, replicas=2, rps=20)
    for api in fleet_apis[1:]:
        deploy(api, ns["prod"], "web", OLD, replicas=2, rps=20)
    document = pipeline_document(f"ci-{unique}", registry.image("shop/web", "{{IMAGE_TAG}}"), [
        stage("dev", ns["dev"], ["local-1"], template=f"c{unique}"),
        stage("prod", ns["prod"], ["local-2", "local-3"], template=f"c{unique}", maxParallel=2, gate={"soak": "3s"})])
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy" / "pipeline.yaml").write_text(yaml.safe_dump(document).replace("'{{IMAGE_TAG}}'", "{{IMAGE_TAG}}"))
    run = steps()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "GITHUB_SHA": sha,
           "TEMPORAL_ADDRESS": dev_server.address, "TEMPORAL_UI": dev_server.ui_url, "ROLLOUT_TASK_QUEUE": fleet_worker,
           "PIPELINE_TEMPLATE": "deploy/pipeline.yaml", "GITHUB_ACTOR": "octocat",
           "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md")}

    def step(name: str, attempt: str) -> subprocess.CompletedProcess:
        output = tmp_path / f"output-{attempt}"
        work = tmp_path / attempt
        work.mkdir(exist_ok=True)
        (work / "deploy").mkdir(exist_ok=True)
        (work / "deploy" / "pipeline.yaml").write_text((tmp_path / "deploy" / "pipeline.yaml").read_text())
        result = subprocess.run(["bash", "-e", "-c", run[name]], cwd=work, capture_output=True, text=True, timeout=400,
                                env={**env, "GITHUB_OUTPUT": str(output)})
        assert "Traceback" not in result.stderr, result.stderr
        return result

    assert step("bundle", "first").returncode == 0
    first = asyncio.create_task(asyncio.to_thread(step, "deliver", "first"))
    pid = f"pipeline/test/ci-{unique}"

    async def running():
        from starters.commands import status_or_none
        from workers.temporal import TemporalSettings, connect

        client = await connect(TemporalSettings(address=dev_server.address, namespace="default", ui=dev_server.ui_url))
        return await status_or_none(client.get_workflow_handle(pid))

    await eventually(running, timeout=60, what="the first job's pipeline")
    assert step("bundle", "second").returncode == 0
    second = await asyncio.to_thread(step, "deliver", "second")  # the job re-run while the first still waits
    done = await first
    for attempt, result in (("first", done), ("second", second)):
        assert result.returncode == 0, result.stdout[-1500:] + result.stderr
        assert (tmp_path / f"output-{attempt}").read_text().strip() == "exit-code=0"
        final = RolloutStatus.model_validate_json((tmp_path / attempt / "pipeline-result.json").read_text().splitlines()[-1])
        assert final.rollout_id == pid and final.phase is Phase.HEALTHY
        assert final.pipeline.bundle["web"] == f"{registry.image('shop/web', tag)}@{digest}"
        assert final.started_by == "octocat"
    summary = subprocess.run(["bash", "-e", "-c", run["summary"]], cwd=tmp_path / "second", env=env,
                             capture_output=True, text=True)
    assert summary.returncode == 0, summary.stderr
    markdown = (tmp_path / "summary.md").read_text()
    assert f"### {pid}: Healthy" in markdown
    assert markdown.count("✅ verified") == 3 and "| prod | wave 1 | local-3 |" in markdown
    assert digest.removeprefix("sha256:")[:12] in markdown
