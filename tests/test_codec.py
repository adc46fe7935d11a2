"""Optional payload encryption: with a payload key, the Temporal server only ever holds ciphertext (the
spec, the status, decisions, activity inputs and results); the codec server opens them for the Web UI
and the CLI, with CORS for the UI's origin; a wrong key is refused naming it; a bad key setting is a
one-line user error (exit 2)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys

import httpx
import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads
from temporalio.client import Client
from temporalio.worker import Worker

from models.status import PromoteRequest, RolloutInput, RolloutStatus
from tests.helpers import canary_rollout, history_payloads, paused_at
from tests.test_canary_workflow import FakeCluster
from workers.codec import ENCODING, CodecServer, EncryptionCodec, PayloadKeyError, parse_keys
from workflows.canary import CanaryRollout

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEY = "2026-11:" + base64.b64encode(b"k" * 32).decode()


async def test_the_server_holds_only_ciphertext_and_the_codec_server_opens_it(time_skipping_env, unique, monkeypatch):
    monkeypatch.setenv("DURABLE_ROLLOUTS_PAYLOAD_KEY", KEY)
    from workers.codec import data_converter

    sealed = Client(time_skipping_env.client.service_client, data_converter=data_converter())
    cluster, queue = FakeCluster(), f"codec-{unique}"
    rollout = canary_rollout(name=f"sealed-{unique}", image=f"registry.local/secret-sauce:{unique}",
                             steps=[{"setWeight": 20}, {"pause": {}}, {"setWeight": 100}])
    async with Worker(sealed, task_queue=queue, workflows=[CanaryRollout], activities=cluster.activities()):
        handle = await sealed.start_workflow(CanaryRollout.run, RolloutInput(rollout=rollout, requested_by="ci"),
                                             id=rollout.rollout_id, task_queue=queue)
        paused = await paused_at(handle, 1)
        assert paused.image.endswith(unique), "the sealed client reads its own payloads"
        await handle.execute_update("promote", PromoteRequest(by="alice"))
        final: RolloutStatus = await handle.result()
    assert final.phase.value == "Healthy"

    history = await time_skipping_env.client.get_workflow_handle(rollout.rollout_id).fetch_history()  # no key
    # Not search attributes (the index `rollout list` uses: phase, step, name — readable by design)
    # nor the SDK's patch markers (a patch's name).
    payloads = history_payloads(history.events, skip=("searchAttributes", "markerRecordedEventAttributes"))
    plain = [(p.metadata["encoding"], p.data[:80]) for p in payloads if p.metadata["encoding"] != ENCODING]
    assert len(payloads) > 10 and not plain, f"every payload sealed: {plain}"
    raw = b"".join(event.SerializeToString() for event in history.events)
    assert f"secret-sauce:{unique}".encode() not in raw and b"alice" not in raw

    codec = CodecServer(EncryptionCodec(parse_keys(KEY, "test"))).start()
    try:
        body = json_format.MessageToJson(Payloads(payloads=payloads[:1]))
        answer = httpx.post(f"{codec.url}/default/decode", content=body,
                            headers={"X-Namespace": "default", "Origin": "http://localhost:8233"})
        assert answer.status_code == 200, answer.text
        assert answer.headers["Access-Control-Allow-Origin"] == "http://localhost:8233"
        opened = json_format.Parse(answer.content, Payloads()).payloads[0]
        assert opened.metadata["encoding"] == b"json/plain" and f"secret-sauce:{unique}" in opened.data.decode()
        preflight = httpx.options(f"{codec.url}/decode", headers={"Origin": "http://localhost:8233",
                                                                  "Access-Control-Request-Method": "POST"})
        assert preflight.status_code == 204 and "X-Namespace" in preflight.headers["Access-Control-Allow-Headers"]
        assert "Access-Control-Allow-Origin" not in httpx.options(
            f"{codec.url}/decode", headers={"Origin": "https://evil.example"}).headers
    finally:
        codec.stop()

    other = CodecServer(EncryptionCodec({"2025-01": b"o" * 32})).start()
    try:
        refused = httpx.post(f"{other.url}/decode", content=body)
        assert refused.status_code == 400 and "'2026-11'" in refused.json()["message"]
    finally:
        other.stop()


@pytest.mark.parametrize("value, words", [
    ("nocolon", "each key is written id:base64"),
    ("k1:***", "key 'k1' is not base64"),
    ("k1:" + base64.b64encode(b"short").decode(), "key 'k1' has 5 bytes; AES-256 needs 32"),
])
def test_a_bad_key_setting_is_a_one_line_user_error(value, words):
    with pytest.raises(PayloadKeyError, match=words):
        parse_keys(value, "$DURABLE_ROLLOUTS_PAYLOAD_KEY")
    result = subprocess.run([sys.executable, "-m", "starters.cli", "list"], cwd=REPO, capture_output=True, text=True,
                            env={**os.environ, "DURABLE_ROLLOUTS_PAYLOAD_KEY": value, "TEMPORAL_ADDRESS": "127.0.0.1:9"})
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().count("\n") == 0 and words in result.stderr and "DURABLE_ROLLOUTS_PAYLOAD_KEY" in result.stderr


def test_payloads_written_before_encryption_still_open():
    import asyncio

    from temporalio.api.common.v1 import Payload

    plain = Payload(metadata={"encoding": b"json/plain"}, data=json.dumps({"a": 1}).encode())
    codec = EncryptionCodec(parse_keys(KEY, "test"))
    assert asyncio.run(codec.decode([plain])) == [plain]
    sealed = asyncio.run(codec.encode([plain]))
    assert sealed[0].data != plain.data and asyncio.run(codec.decode(sealed)) == [plain]
