"""Answer 100,000 `units` requests through the JSON contract; compare with a bare JSON round trip.

Run: .venv/bin/python benchmarks/bench_units.py [--count N]
Prints seconds for each path and the ratio against the baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from therapy_timer.rules import answer_batch

TIMED = ["97110", "97112", "97116", "97140", "97530", "97535", "97035"]
UNTIMED = ["97161", "97164", "97012", "97150"]


def make_requests(count: int, seed: int = 2026) -> list[dict[str, object]]:
    rng = random.Random(seed)
    requests: list[dict[str, object]] = []
    for _ in range(count):
        codes = rng.sample(TIMED, rng.randint(1, 4))
        timed = {c: rng.randint(0, 45) for c in codes}
        request: dict[str, object] = {
            "method": rng.choice(["cms", "ama"]),
            "discipline": rng.choice(["PT", "OT"]),
            "date_of_service": "2026-11-20",
            "timed": timed,
        }
        if rng.random() < 0.3:
            code = codes[0]
            request["assistant_minutes"] = {code: rng.randint(0, timed[code])}
        if rng.random() < 0.3:
            request["untimed"] = [rng.choice(UNTIMED)]
        requests.append(request)
    return requests


def best_of(repeats: int, work: object) -> float:
    assert callable(work)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    payload = json.dumps(make_requests(args.count))

    def baseline() -> None:
        json.dumps(json.loads(payload))

    def contract() -> None:
        json.dumps(answer_batch(json.loads(payload)))

    base = best_of(args.repeats, baseline)
    ours = best_of(args.repeats, contract)
    print(f"requests:                 {args.count:,}")
    print(f"json load+dump baseline:  {base:8.3f} s")
    print(
        f"units contract in-process:{ours:8.3f} s  ({ours / base:6.1f} x baseline, "
        f"{ours / args.count * 1e6:.1f} us/request)"
    )

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "batch.json"
        path.write_text(payload)
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "therapy_timer", "units", "--request", str(path), "--json"],
            capture_output=True,
            check=True,
            env={"THERAPY_TIMER_DATA_DIR": tmp, "PATH": ""},
        )
        whole = time.perf_counter() - start
    answers = json.loads(done.stdout)
    assert len(answers) == args.count and not any("error" in a for a in answers)
    print(f"units command (process):  {whole:8.3f} s  ({whole / base:6.1f} x baseline)")


if __name__ == "__main__":
    main()
