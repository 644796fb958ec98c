"""The long stress of issue 10: the real window offscreen, many concurrent commands, SIGKILLs.

Same harness and checks as tests/test_stress_records.py, more commands and more at once:
    .venv/bin/python benchmarks/stress_records.py --commands 300 --concurrency 8
prints the figures (commands, signals, tracebacks, exit codes, integrity) as JSON and exits 1
if any check fails.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.test_stress_records import check, run_stress


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--patients", type=int, default=6)
    parser.add_argument("--kill-fraction", type=float, default=0.15)
    parser.add_argument("--seed", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "data"
        report = run_stress(
            data,
            commands=args.commands,
            concurrency=args.concurrency,
            patients=args.patients,
            kill_fraction=args.kill_fraction,
            seed=args.seed,
        )
        figures = report.figures()
        figures["window_messages"] = figures["window_messages"][:10]
        try:
            check(data, report)
            figures["checks"] = "passed"
        except AssertionError as exc:
            figures["checks"] = f"FAILED: {str(exc)[:500]}"
        print(json.dumps(figures, indent=2))
    return 0 if figures["checks"] == "passed" else 1


if __name__ == "__main__":
    sys.exit(main())
