"""Secrets never reach a workflow's history: a canary whose web analysis sends a bearer token and a
token in its URL (`{{secrets.NAME}}`), whose event webhook URL carries a token, whose notification
channel URL carries one — all read inside the activities from the environment — runs to Healthy
against a local server that checks them, and then every event of its history (every payload decoded)
is scanned for the secret values: 0 occurrences allowed. A secret that is not set fails the step with
its name, never its value."""

from __future__ import annotations

import concurrent.futures
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from temporalio.worker import Worker

from activities.analysis import AnalysisActivities
from activities.approvers import ApproverActivities
from activities.notify import NotifyActivities
from activities.webhooks import WebhookActivities
from models.spec import parse_rollout
from models.status import Phase, RolloutInput, RolloutStatus
from tests import figures
from tests.helpers import canary_document, history_payloads
from tests.test_canary_workflow import FakeCluster
from workflows.canary import CanaryRollout

SECRETS = {"CHECK_TOKEN": "fake-bearer-7f3a9c", "URL_KEY": "fake-urlkey-41d2", "HOOK_KEY": "fake-hook-88e1",
           "SLACK": "T000/B000/fake-slack-5c6d"}


class Guarded:
    """A local server that answers only requests carrying the expected secrets; records what it saw."""

    def __init__(self):
        seen = self.seen = []

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                seen.append((self.command, self.path, self.headers.get("Authorization"), body))
                ok = (f"key={SECRETS['URL_KEY']}" in self.path and self.headers.get("Authorization") ==
                      f"Bearer {SECRETS['CHECK_TOKEN']}") or f"key={SECRETS['HOOK_KEY']}" in self.path \
                    or SECRETS["SLACK"] in self.path
                self.send_response(200 if ok else 401)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(json.dumps({"ok": ok}).encode())

            do_GET = do_POST = _answer

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.base = f"http://127.0.0.1:{self.server.server_port}"


@pytest.fixture
def guarded(monkeypatch):
    server = Guarded()
    monkeypatch.setenv("ROLLOUT_SECRET_CHECK_TOKEN", SECRETS["CHECK_TOKEN"])
    monkeypatch.setenv("ROLLOUT_SECRET_URL_KEY", SECRETS["URL_KEY"])
    monkeypatch.setenv("ROLLOUT_SECRET_HOOK_KEY", SECRETS["HOOK_KEY"])
    monkeypatch.setenv("ROLLOUT_NOTIFY_RELEASES", f"{server.base}/hooks/{SECRETS['SLACK']}")
    yield server
    server.server.shutdown()


def _rollout(base: str, name: str, token: str = "checkToken"):
    document = canary_document(name=name, steps=[
        {"setWeight": 20}, {"analysis": {"templates": [{"templateName": "smoke"}]}}, {"setWeight": 100}])
    document["spec"]["analysis"] = {"templates": [{"name": "smoke", "metrics": [{
        "name": "smoke", "successCondition": "result == True",
        "provider": {"web": {"url": base + "/check?key={{secrets.urlKey}}", "jsonPath": "ok",
                             "headers": {"Authorization": "Bearer {{secrets.%s}}" % token}}}}]}]}
    document["spec"]["webhooks"] = [{"name": "audit", "type": "event", "url": base + "/event?key={{secrets.hookKey}}"}]
    document["spec"]["notifications"] = [{"channel": "releases"}]
    return parse_rollout(document)


def payload_texts(history) -> list[str]:
    """The history as JSON text, and every payload in it decoded."""
    return [history.to_json()] + [p.data.decode("utf-8", "replace") for p in history_payloads(history.events)]


async def run(env, rollout) -> tuple[RolloutStatus, str]:
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=4)
    queue = f"secrets-{rollout.metadata.name}"
    activities = [*FakeCluster().activities(), AnalysisActivities().measure, WebhookActivities().call_webhook,
                  NotifyActivities().notify, ApproverActivities().resolve_groups]
    async with Worker(env.client, task_queue=queue, workflows=[CanaryRollout], activities=activities,
                      activity_executor=pool):
        handle = await env.client.start_workflow(CanaryRollout.run, RolloutInput(rollout=rollout, requested_by="ci"),
                                                 id=rollout.rollout_id, task_queue=queue)
        final: RolloutStatus = await handle.result()
        history = await handle.fetch_history()
    pool.shutdown()
    return final, history


async def test_secrets_reach_their_targets_and_never_the_history(time_skipping_env, guarded, unique):
    final, history = await run(time_skipping_env, _rollout(guarded.base, f"sec-{unique}"))
    assert final.phase is Phase.HEALTHY, final.message
    paths = [path for _, path, _, _ in guarded.seen]
    assert any(p.startswith("/check?key=" + SECRETS["URL_KEY"]) for p in paths)  # the analysis got through
    assert any(p.startswith("/event?key=" + SECRETS["HOOK_KEY"]) for p in paths)  # so did the webhook
    assert any(SECRETS["SLACK"] in p for p in paths)  # and the notifications
    assert final.analysis[0].measurements[0].query == f"GET {guarded.base}/check?key={{{{secrets.urlKey}}}}"

    texts = payload_texts(history)
    assert len(texts) > 20 and any("{{secrets.urlKey}}" in t for t in texts[1:]), "the payloads were decoded"
    found = {name: sum(t.count(value) for t in texts) for name, value in SECRETS.items()}
    print(f"\nsecret occurrences in {len(texts) - 1} decoded payloads of the history: {found}")
    figures.write("secrets", {"payloads": len(texts) - 1, "secrets": len(SECRETS), "occurrences": sum(found.values())})
    assert found == {name: 0 for name in SECRETS}


async def test_a_missing_secret_fails_naming_it_not_its_value(time_skipping_env, guarded, unique):
    final, history = await run(time_skipping_env, _rollout(guarded.base, f"sec2-{unique}", token="noSuchToken"))
    assert final.phase is Phase.DEGRADED, final
    assert "secret 'noSuchToken' is not set: $ROLLOUT_SECRET_NO_SUCH_TOKEN" in final.message
    assert all(SECRETS["CHECK_TOKEN"] not in t for t in payload_texts(history))


def test_groups_channels_and_secrets_from_files(tmp_path, monkeypatch):
    """The file forms (for a mounted Kubernetes Secret or a config file): groups, channel URLs, secrets;
    an environment variable wins over the file; what is missing is named, never a value."""
    from temporalio.exceptions import ApplicationError

    from activities.notify import channel_url
    from activities.secrets import reveal

    (tmp_path / "groups.yaml").write_text("platform-team: [alice, bob]\nsre: [carol]\n")
    (tmp_path / "notify.yaml").write_text("releases: https://hooks.example/T1/B1/abc\n")
    (tmp_path / "secrets.yaml").write_text("checkToken: from-file-123\n")
    monkeypatch.setenv("DURABLE_ROLLOUTS_GROUPS", str(tmp_path / "groups.yaml"))
    monkeypatch.setenv("DURABLE_ROLLOUTS_NOTIFY_FILE", str(tmp_path / "notify.yaml"))
    monkeypatch.setenv("DURABLE_ROLLOUTS_SECRETS_FILE", str(tmp_path / "secrets.yaml"))
    monkeypatch.setenv("ROLLOUT_GROUP_SRE", "dave, erin")
    assert ApproverActivities().resolve_groups(["platform-team", "sre"]) == {
        "platform-team": ["alice", "bob"], "sre": ["dave", "erin"]}
    assert channel_url("releases") == "https://hooks.example/T1/B1/abc"
    assert reveal("Bearer {{secrets.checkToken}}") == "Bearer from-file-123"
    with pytest.raises(ApplicationError, match="approver group 'nobody' is not defined"):
        ApproverActivities().resolve_groups(["nobody"])
    with pytest.raises(ApplicationError, match=r"notification channel 'oncall': set \$ROLLOUT_NOTIFY_ONCALL"):
        channel_url("oncall")
    (tmp_path / "secrets.yaml").write_text("checkToken: [very-secret-456\n")  # broken YAML
    with pytest.raises(ApplicationError) as broken:
        reveal("{{secrets.checkToken}}")
    assert "very-secret" not in broken.value.message and broken.value.message.endswith("Error")
