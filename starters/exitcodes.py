"""Exit codes of `rollout`, one per kind of outcome, so CI can branch on them."""

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0  # done; with --wait: the rollout ended Healthy
    DEGRADED = 1  # with --wait: the rollout ended Degraded (aborted, failed, rolled back)
    INVALID = 2  # bad input: the spec, an argument, a rollout ID
    TIMEOUT = 3  # --wait/--watch gave up before the rollout finished
    NOT_FOUND = 4  # no such rollout
    CONFLICT = 5  # refused in the rollout's current state (already running, not paused, finished)
    UNAVAILABLE = 6  # Temporal (or the local cluster) cannot be reached
    INCONCLUSIVE = 7  # `rollout analyze`: the analysis could not decide
    UNREAD = 8  # a re-run's check: a target could not be read (nothing started)


class UserError(Exception):
    """A mistake or a refusal to report as one line on stderr, never as a traceback."""

    def __init__(self, message: str, code: ExitCode = ExitCode.INVALID):
        super().__init__(message)
        self.code = code
