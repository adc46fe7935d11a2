"""The run's timeline: when each test's phases started and stopped, on which xdist worker — to see which
work unit a parallel run waited for at its end (`scripts/test` prints the summary).

Written by the controller (or a serial run) to `artifacts/test-timeline.jsonl`, one line a phase;
`python -m tests.timeline [FILE]` prints, for each worker, how long it was busy and its last units.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.scheduling import unit_of

FILE = Path(__file__).resolve().parent.parent / "artifacts" / "test-timeline.jsonl"


def start() -> None:
    """A new run: the previous run's timeline is dropped."""
    FILE.parent.mkdir(parents=True, exist_ok=True)
    FILE.write_text("")


def record(report) -> None:  # noqa: ANN001 - a pytest TestReport (on the controller, with xdist's `node`)
    node = getattr(report, "node", None)
    worker = node.gateway.id if node is not None else "serial"
    line = {"worker": worker, "test": report.nodeid, "when": report.when, "start": report.start,
            "stop": report.stop, "outcome": report.outcome}
    with FILE.open("a") as out:
        out.write(json.dumps(line) + "\n")


def _clock(seconds: float) -> str:
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def summary(lines: list[dict], last: int = 3) -> list[str]:
    """Per worker: busy time, when it finished (from the run's first start), and its last units' spans."""
    if not lines:
        return ["no timeline recorded"]
    began = min(line["start"] for line in lines)
    out = []
    for worker in sorted({line["worker"] for line in lines}):
        mine = sorted((line for line in lines if line["worker"] == worker), key=lambda line: line["start"])
        units: dict[str, list[float]] = {}
        for line in mine:
            span = units.setdefault(unit_of(line["test"]), [line["start"], line["stop"]])
            span[0], span[1] = min(span[0], line["start"]), max(span[1], line["stop"])
        busy = sum(line["stop"] - line["start"] for line in mine)
        ends = sorted(units.items(), key=lambda item: item[1][1])[-last:]
        tail = ", ".join(f"{unit} {_clock(a - began)}–{_clock(b - began)}" for unit, (a, b) in ends)
        out.append(f"{worker}: done at {_clock(max(line['stop'] for line in mine) - began)}, busy {_clock(busy)}; "
                   f"last: {tail}")
    return out


def main(argv: list[str]) -> int:
    path = Path(argv[0]) if argv else FILE
    lines = [json.loads(text) for text in path.read_text().splitlines() if text.strip()] if path.exists() else []
    print("\n".join(summary(lines)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
