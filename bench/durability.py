"""The durability figures of one test run: the fault matrix's cells run and passed, the kill points
exercised, the API fault rate survived, the damaged specs generated and rejected, the secret
occurrences found in histories (must be 0).

    python -m bench.durability          # summarise artifacts/durability/ (written by the last test run)
    python -m bench.durability --run    # run the durability tests first (matrix, hostile input, secrets)

`scripts/test` prints this after the whole suite.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "artifacts" / "durability"
TESTS = ["tests/test_matrix.py", "tests/test_hostile_input.py", "tests/test_secrets.py"]


def rows(kind: str) -> list[dict]:
    path = RESULTS / f"{kind}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def matrix_table(cells: list[dict]) -> list[str]:
    strategies = list(dict.fromkeys(c["strategy"] for c in cells))
    faults = list(dict.fromkeys(c["fault"] for c in cells))
    width = max(len(f) for f in faults)
    lines = [f"  {'':{width}}  " + "  ".join(f"{s:>13}" for s in strategies)]
    for fault in faults:
        marks = []
        for strategy in strategies:
            found = [c for c in cells if c["strategy"] == strategy and c["fault"] == fault]
            mark = "-" if not found else ("pass" if all(c["passed"] for c in found) else "FAIL")
            seconds = f" {found[-1]['seconds']:.0f}s" if found else ""
            marks.append(f"{mark + seconds:>13}")
        lines.append(f"  {fault:{width}}  " + "  ".join(marks))
    return lines


def summary() -> tuple[list[str], bool]:
    cells, specs, secrets = rows("cells"), rows("specs"), rows("secrets")
    out: list[str] = []
    ok = True
    if cells:
        passed = sum(c["passed"] for c in cells)
        ok &= passed == len(cells)
        out.append(f"fault matrix: {len(cells)} cells run, {passed} passed")
        out += matrix_table(cells)
        kills = [c for c in cells if "kills" in c]
        points = sorted({p for c in kills for p in c.get("kill_points", [])})
        out.append(f"worker kills: {sum(c['kills'] for c in kills)} SIGKILLs at {len(points)} kill points: "
                   + ", ".join(points))
        api = [c for c in cells if "fault_rate" in c and c["passed"]]
        if api:
            kinds: Counter[str] = Counter()
            for c in api:
                kinds.update(c["fault_kinds"])
            out.append(f"Kubernetes API faults survived: rate {max(c['fault_rate'] for c in api):.0%}, "
                       f"{sum(c['faults'] for c in api)} faults in {sum(c['api_requests'] for c in api)} apps-API requests ("
                       + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())) + ")")
        outage = [c for c in cells if "measurement_errors" in c and c["passed"]]
        if outage:
            out.append(f"Prometheus outages survived: {len(outage)}, "
                       f"{sum(c['measurement_errors'] for c in outage)} failed measurements recorded as errors")
    if specs:
        generated, rejected = sum(s["generated"] for s in specs), sum(s["rejected"] for s in specs)
        out.append(f"damaged specs: {generated} generated, {rejected} rejected naming the field, "
                   f"{generated - rejected} still valid after the change")
    if secrets:
        found = sum(s["occurrences"] for s in secrets)
        ok &= found == 0
        out.append(f"secret occurrences in histories: {found} "
                   f"({sum(s['secrets'] for s in secrets)} fake secrets, {sum(s['payloads'] for s in secrets)} payloads)")
    return out or ["no durability figures yet: run the tests (python -m bench.durability --run)"], ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="store_true", help="run the durability tests first")
    args, pytest_args = parser.parse_known_args()
    if args.run:
        for kind in ("cells", "specs", "secrets"):
            (RESULTS / f"{kind}.jsonl").unlink(missing_ok=True)
        subprocess.run([sys.executable, "-m", "pytest", "-q", *TESTS, *pytest_args], cwd=REPO)
    lines, ok = summary()
    print("\n".join(["== durability figures =="] + lines))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
