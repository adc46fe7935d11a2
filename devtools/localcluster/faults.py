"""Worker kill points for fault-injection tests: a worker started with `$DURABLE_ROLLOUTS_KILL_PLAN`
(a JSON file) SIGKILLs itself at the points the plan names, like a machine losing power.

    {"journal": "/tmp/x/kills.jsonl",          # one line per kill (the test reads it back)
     "points": [{"when": "after",  "activities": ["set_canary_weight", "promote_canary"]},
                {"when": "during", "activities": ["roll_out_deployment"], "seconds": 1.5},
                {"when": "after", "activities": ["measure"], "max": 1}],   # at most once for this activity
     "max_kills": 10}

- `after`: the activity's body returned (its side effect is done) and the result has not reached
  the server: the step boundary, and the worst moment for idempotence. The retry runs the body again.
- `before`: as the activity starts (the workflow has just moved on to the step).
- `during`: `seconds` into the activity (waiting for readiness, a measurement).

- `s3`: `[{"after_put": ".snapshot.json", "max": 1}]` — right after an S3 PutObject whose key ends so
  has been answered (mid-publish of an updater channel: the versioned files are written, the timestamp
  not yet).

Only first attempts are killed, so each scheduled activity dies at most once per point and the rollout
always gets through; the journal is shared by the successive worker processes of one test.
"""

from __future__ import annotations

import contextvars
import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

ENV = "DURABLE_ROLLOUTS_KILL_PLAN"


def from_env() -> list[Interceptor]:
    """The interceptor the worker adds when the plan variable is set (never in production)."""
    path = os.environ.get(ENV)
    if not path:
        return []
    plan = KillPlan(json.loads(Path(path).read_text()))
    plan.watch_s3()
    return [plan]


def read_journal(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class KillPlan(Interceptor):
    def __init__(self, plan: dict[str, Any]):
        self.journal = Path(plan["journal"])
        self.points = plan.get("points", [])
        self.max_kills = int(plan.get("max_kills", 1000))
        self.plan_s3 = plan.get("s3", [])
        self._lock = threading.Lock()

    def watch_s3(self) -> None:
        """Kill points on S3 writes, through botocore's event hooks on boto3's default session (every
        client the worker's S3Clients builds comes from it)."""
        import boto3

        if not self.plan_s3:
            return
        boto3.setup_default_session()
        events = boto3.DEFAULT_SESSION.events
        events.register("before-parameter-build.s3.PutObject", self._note_key)
        events.register("after-call.s3.PutObject", self._after_put)

    @staticmethod
    def _note_key(params: dict, context: dict, **_: Any) -> None:
        context["kill_plan_key"] = params.get("Key", "")

    def _after_put(self, context: dict, **_: Any) -> None:
        key = context.get("kill_plan_key", "")
        kills = read_journal(self.journal)
        for point in self.plan_s3:
            done = sum(1 for k in kills if k.get("s3") == point["after_put"])
            if key.endswith(point["after_put"]) and done < int(point.get("max", 1)):
                with open(self.journal, "a") as journal:
                    journal.write(json.dumps({"when": "after_put", "s3": point["after_put"], "key": key,
                                              "activity": "", "at": time.time()}) + "\n")
                    journal.flush()
                    os.fsync(journal.fileno())
                os.kill(os.getpid(), signal.SIGKILL)

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _Killer(next, self)

    def point(self, when: str, kills: list[dict[str, Any]]) -> dict[str, Any] | None:
        """The plan's point for this activity at `when`, given the kills so far (the journal)."""
        info = activity.info()
        if len(kills) >= self.max_kills:
            return None
        done = sum(1 for k in kills if k["activity"] == info.activity_type and k["when"] == when)
        return next((p for p in self.points if p["when"] == when and info.activity_type in p["activities"]
                     and done < int(p.get("max", 1000))), None)

    def kill(self, when: str) -> None:
        info = activity.info()
        with self._lock:
            with open(self.journal, "a") as journal:
                journal.write(json.dumps({"when": when, "activity": info.activity_type, "activity_id": info.activity_id,
                                          "workflow_id": info.workflow_id, "at": time.time()}) + "\n")
                journal.flush()
                os.fsync(journal.fileno())
            os.kill(os.getpid(), signal.SIGKILL)


class _Killer(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, plan: KillPlan):
        super().__init__(next)
        self.plan = plan

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        if activity.info().attempt != 1:  # only first attempts die: no journal to read
            return await super().execute_activity(input)
        kills = read_journal(self.plan.journal)  # this process dies at its first kill: read once
        if self.plan.point("before", kills):
            self.plan.kill("before")
        during = self.plan.point("during", kills)
        timer = None
        if during:  # the timer thread runs in this activity's context, for activity.info()
            context = contextvars.copy_context()
            timer = threading.Timer(float(during.get("seconds", 1.0)), context.run, args=(self.plan.kill, "during"))
            timer.start()
        try:
            result = await super().execute_activity(input)
        finally:
            if timer is not None:
                timer.cancel()
        if self.plan.point("after", kills):
            self.plan.kill("after")
        return result
