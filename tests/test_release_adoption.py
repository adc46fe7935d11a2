"""A release's end says what it means (time-skipping server, real updater activities and TUF metadata in
moto, the real `measure` activity reading a web endpoint on loopback): 100% is the channel offering the
release to every device, adoption is what `spec.observe` measures; with `spec.adoption` the release
waits, measuring every `every`, until that share runs it — or ends Degraded after `within`, still offered."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from activities.analysis import default_providers
from localcluster.updates import make_artifact
from models.documents import SpecError
from models.release import ReleaseInput
from models.status import Phase, RolloutStatus
from tests.release_helpers import measure_activity, release_document, release_worker
from workflows.release import StagedRelease


class Shares:
    """A web endpoint answering {"share": N}: the next of `answers` each time (the last repeats)."""

    def __init__(self, answers: list[float]):
        self.answers, self.asked = answers, 0
        shares = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                answer = shares.answers[min(shares.asked, len(shares.answers) - 1)]
                shares.asked += 1
                body = json.dumps({"share": answer}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/share"

    def observe(self) -> dict:
        return {"web": {"url": self.url, "jsonPath": "share"}}


@pytest.fixture
def shares():
    made: list[Shares] = []

    def make(answers: list[float]) -> Shares:
        made.append(Shares(answers))
        return made[-1]

    yield make
    for s in made:
        s.server.shutdown()


async def run(env, s3_server, setup, tmp_path, name: str, observe: dict, adoption: dict | None) -> RolloutStatus:
    release = release_document(name, setup, make_artifact(tmp_path, "3.0.0"), "3.0.0",
                               [{"percent": 10, "bake": "1h"}, {"percent": 100}], observe=observe,
                               **({"adoption": adoption} if adoption else {}))
    async with release_worker(env.client, f"q-{name}", s3_server, setup,
                              extra=[measure_activity(default_providers())]):
        handle = await env.client.start_workflow(StagedRelease.run, ReleaseInput(release=release, requested_by="ci"),
                                                 id=release.rollout_id, task_queue=f"q-{name}")
        return await handle.result()


async def test_healthy_says_offered_and_waits_for_the_adoption_asked_for(time_skipping_env, s3_server, updater_setup,
                                                                         tmp_path, unique, shares):
    plain = shares([10.0, 52.5])
    final = await run(time_skipping_env, s3_server, updater_setup, tmp_path, f"plain-{unique}", plain.observe(), None)
    assert final.phase is Phase.HEALTHY
    assert final.message == (f"app-3.0.0.tar.gz 3.0.0 (linux-x86_64) is offered to 100% of {final.target}; 52.50% of "
                             "the audience runs it (measured)"), final.message
    assert "is at 100%" not in final.message

    rising = shares([10.0, 40.0, 70.0, 91.0])  # the two phases' ends, the release at 100%, two hours later
    final = await run(time_skipping_env, s3_server, updater_setup, tmp_path, f"rising-{unique}", rising.observe(),
                      {"minimum": 90, "within": "1d", "every": "2h"})
    assert final.phase is Phase.HEALTHY and final.message.endswith("91.00% of the audience runs it (measured)")
    full = next(h.at for h in final.history if h.event == "step-started" and h.step == 1)
    assert final.finished_at - full >= timedelta(hours=2), "one more measurement, two hours later"
    assert [h.detail.split("%")[0] for h in final.history if h.event == "observed"] == ["10.00", "40.00", "70.00",
                                                                                           "91.00"]

    stuck = shares([10.0, 35.0])
    final = await run(time_skipping_env, s3_server, updater_setup, tmp_path, f"stuck-{unique}", stuck.observe(),
                      {"minimum": 90, "within": "6h", "every": "2h"})
    assert (final.phase, final.reason) == (Phase.DEGRADED, "AdoptionBelowMinimum")
    assert final.message.endswith("but after 6h adoption is 35.00%, below adoption.minimum 90%"), final.message
    assert final.exposure.desired == 100, "still offered: adoption below the minimum is not a rollback"


def test_adoption_needs_a_measurement(updater_setup, tmp_path):
    with pytest.raises(SpecError) as refusal:
        release_document("no-observe", updater_setup, make_artifact(tmp_path, "3.0.0"), "3.0.0",
                         [{"percent": 100}], adoption={"minimum": 90})
    assert refusal.value.problems == ["spec.adoption: adoption is measured by spec.observe: give it (a prometheus "
                                      "or web query)"]
