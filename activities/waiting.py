"""Waiting inside an activity for something outside to settle: the deadline survives retries (each
heartbeat carries when the wait started, and a retried attempt reads it back), and a worker told to stop
hands its waits over at once instead of holding them for its graceful shutdown."""

from __future__ import annotations

import time

from temporalio import activity
from temporalio.exceptions import ApplicationError


def started_from(details: tuple, name: str) -> float:
    """When the wait `name` started: from an earlier attempt's heartbeat, or now."""
    for item in details:
        if isinstance(item, dict) and item.get("wait") == name:
            return float(item["started"])
    return time.time()


def wait_started(name: str) -> float:
    """`started_from` this activity's own heartbeat details (now, outside an activity)."""
    return started_from(activity.info().heartbeat_details if activity.in_activity() else (), name)


def hand_over_on_shutdown(what: str) -> None:
    """A worker told to stop (SIGTERM) gives its waits up at once, as retryable failures: the server hands
    them to another worker within a second, which resumes each from its heartbeat (the deadline kept),
    instead of this one holding them for its whole graceful shutdown."""
    if activity.is_worker_shutdown():
        raise ApplicationError(f"{what}: this worker is shutting down; the wait goes on on another worker",
                               type="WorkerShutdown")


def still_waiting(name: str, started: float, what: str) -> None:
    """Between two polls: hand over on shutdown, heartbeat the wait's start."""
    if activity.in_activity():
        hand_over_on_shutdown(what)
        activity.heartbeat({"wait": name, "started": started})
