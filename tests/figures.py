"""Figures the durability tests measure, appended as JSON lines under artifacts/durability/ (one file
per kind) and summarised by `python -m bench.durability`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent.parent / "artifacts" / "durability"


def write(kind: str, row: dict[str, Any]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(RESULTS / f"{kind}.jsonl", "a") as out:
        out.write(json.dumps(row) + "\n")
