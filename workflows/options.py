"""Activity options, one per kind of work, so every strategy retries the same failures the same way."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio.common import RetryPolicy
from temporalio.workflow import ActivityCancellationType

# ApplicationError types that no retry can fix: the input or the target is wrong, or the new
# version did not become ready within its progress deadline.
PERMANENT = ["NotFound", "Invalid", "Forbidden", "Unauthorized", "InvalidTarget", "ProgressDeadlineExceeded", "StaleStep"]

KUBERNETES_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    non_retryable_error_types=PERMANENT,
)

# Kubernetes activities: the worker heartbeats for them every second whatever they are doing
# (workers/heartbeat.py), so 4 s means only a lost worker, and its waits move on within that.
HEARTBEAT = timedelta(seconds=4)


def kubernetes(progress_deadline_seconds: int) -> dict[str, Any]:
    """For activities that change a cluster and wait for it to settle (they heartbeat while waiting).

    start-to-close covers one attempt's wait; schedule-to-close bounds retries of transient API
    errors, so an unreachable cluster ends the step as failed instead of hanging forever.
    """
    deadline = timedelta(seconds=progress_deadline_seconds)
    return {
        "start_to_close_timeout": deadline + timedelta(minutes=1),
        "schedule_to_close_timeout": deadline * 2 + timedelta(minutes=10),
        "heartbeat_timeout": HEARTBEAT,
        "retry_policy": KUBERNETES_RETRY,
        "cancellation_type": ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    }


delivery = kubernetes  # the same for every delivery target's activities (ECS's too): change, wait, heartbeat


# A channel's metadata write: quick, retried while another publish holds the lease (RepositoryBusy) or
# S3 is unreachable; wrong input, a missing repository or missing keys fail at once.
CHANNEL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=20),
    non_retryable_error_types=[*PERMANENT, "MissingKeys"],
)
CHANNEL = {  # the activity heartbeats at each stage: a killed worker's publish is retried in seconds
    "start_to_close_timeout": timedelta(minutes=2),
    "heartbeat_timeout": timedelta(seconds=15),
    "schedule_to_close_timeout": timedelta(minutes=30),
    "retry_policy": CHANNEL_RETRY,
}
# A store upload heartbeats per chunk (1 MiB): a killed worker's upload is retried within seconds and
# continues the store's resumable session from the byte it had reached.
STORE_UPLOAD = {
    "start_to_close_timeout": timedelta(hours=2),
    "heartbeat_timeout": timedelta(seconds=20),
    "retry_policy": CHANNEL_RETRY,
    "cancellation_type": ActivityCancellationType.TRY_CANCEL,
}
# An artifact upload heartbeats per part; a killed worker's upload resumes from its last part.
UPLOAD = {
    "start_to_close_timeout": timedelta(hours=2),
    "heartbeat_timeout": timedelta(seconds=60),
    "retry_policy": CHANNEL_RETRY,
    "cancellation_type": ActivityCancellationType.TRY_CANCEL,
}
