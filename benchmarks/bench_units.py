"""Answer 100,000 `units` requests through the JSON contract; compare with a bare JSON round trip.

Run: .venv/bin/python benchmarks/bench_units.py [--count N] [--repeats N] [--no-process]

Times are CPU seconds (process_time; the child's rusage for the command). The baseline
json-loads the same requests AND json-dumps answers of the same size (computed once, before
timing). The contract runs the command's own path in-process: request text to answer text
(`contract.loads`, then `contract.answer_batch_text`, the text the command writes in pieces);
the dict path (`answer_batch`, then `json.dumps`) is timed beside it. The `units --request`
command runs in a fresh process each time (its output checked byte for byte against the
in-process text; its start-up measured apart on an empty array). All of them take turns, so a
busy machine slows each; min and median of each are printed with their ratios. Then the slowest
request of the tie enumeration (R2.8) over requests built to make many ties. Wall-clock figures
belong here, never in tests.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from therapy_timer.codes import Catalogue, Discipline, Kind, builtin_catalogue
from therapy_timer.contract import answer_batch, answer_batch_text, loads
from therapy_timer.rules import Method, Request, evaluate

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


def timed_run(work: Callable[[], object]) -> float:
    """CPU seconds of this process: on a shared machine, time spent waiting for a core is not
    ours (wall-clock figures moved by 30% from run to run on the 2 shared cores)."""
    start = time.process_time()
    work()
    return time.process_time() - start


def child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def interleaved(repeats: int, *timers: Callable[[], float]) -> list[list[float]]:
    """Each timer's CPU seconds, ``repeats`` times, taking turns."""
    times: list[list[float]] = [[] for _ in timers]
    for _ in range(repeats):
        for spent, timer in zip(times, timers, strict=True):
            spent.append(timer())
    return times


def in_process(work: Callable[[], object]) -> Callable[[], float]:
    return lambda: timed_run(work)


def tie_requests() -> list[Request]:
    """Requests that make the most allocations: many timed codes tied at the cut (R2.8)."""
    timed = [c.code for c in builtin_catalogue() if c.kind is Kind.TIMED]
    out = []
    for n in (len(timed), 20, 12):
        codes = timed[:n]
        for minutes in (7, 8, 11, 14, 22):
            out.append(Request(Method.CMS, Discipline.PT, timed=dict.fromkeys(codes, minutes)))
        # Assistants on half the codes: the default also weighs CQ/CO (R2.8, docs "Ties").
        out.append(
            Request(
                Method.CMS,
                Discipline.PT,
                timed=dict.fromkeys(codes, 11),
                assistant_minutes=dict.fromkeys(codes[::2], 6),
                date_of_service=None,
            )
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-process", action="store_true", help="skip the command's process")
    args = parser.parse_args()

    payload = json.dumps(make_requests(args.count))
    answers = answer_batch(json.loads(payload))
    assert not any("error" in a for a in answers)
    # The fixtures above live for the whole run: out of the collector's sight, so that neither
    # side's collections rescan millions of objects that belong to the benchmark itself.
    gc.freeze()

    def baseline() -> None:
        json.loads(payload)
        json.dumps(answers)

    builtin = builtin_catalogue()

    # Each run starts cold, as a command does: rules and the contract cache what depends on a
    # code and its minutes per catalogue object, so a fresh catalogue holds no answer of an
    # earlier run (a warm process that has seen these very requests is printed apart).
    def contract() -> None:
        answer_batch_text(loads(payload), Catalogue(builtin.codes))

    def contract_warm() -> None:
        answer_batch_text(loads(payload), builtin)

    def contract_dicts() -> None:
        json.dumps(answer_batch(json.loads(payload), Catalogue(builtin.codes)))

    with tempfile.TemporaryDirectory() as tmp:
        path, empty = Path(tmp) / "batch.json", Path(tmp) / "empty.json"
        path.write_text(payload)
        empty.write_text("[]")
        expected = (answer_batch_text(loads(payload), Catalogue(builtin.codes))[0] + "\n").encode()

        def command(file: Path) -> float:
            """The child's CPU seconds for one `units --request FILE --json` process."""
            start = child_cpu()
            done = subprocess.run(
                [sys.executable, "-m", "therapy_timer", "units", "--request", str(file), "--json"],
                capture_output=True,
                check=True,
                env={"THERAPY_TIMER_DATA_DIR": tmp, "PATH": ""},
            )
            spent = child_cpu() - start
            assert file == empty or done.stdout == expected, "the command's answers differ"
            return spent

        timers = [in_process(w) for w in (baseline, contract, contract_warm, contract_dicts)]
        if not args.no_process:
            # The command takes its turn with the rest, so a busy spell slows each side alike.
            timers.append(lambda: command(path))
        base, ours, warm, dicts, *process = interleaved(args.repeats, *timers)
        start_up = [] if args.no_process else [command(empty) for _ in range(3)]
    per = 1e6 / args.count

    def row(label: str, times: list[float]) -> str:
        return (
            f"{label:27s}min {min(times):7.3f} s  median {statistics.median(times):7.3f} s"
            f"  = {min(times) * per:5.1f} / {statistics.median(times) * per:5.1f} us/request"
        )

    print(f"requests:                  {args.count:,} ({args.repeats} interleaved runs)")
    print(row("baseline json load+dump:", base))
    print(row("units contract in-process:", ours))
    print(row("  the same, warm caches:", warm))
    print(row("  dict path (answer_batch):", dicts))
    print(
        f"ratio to baseline:         min {min(ours) / min(base):5.2f} x  "
        f"median {statistics.median(ours) / statistics.median(base):5.2f} x"
    )

    # Cold: a fresh catalogue object has empty caches (rules keeps them per catalogue).
    for label in ("warm", "cold"):
        worst, which = 0.0, ""
        for request in tie_requests():
            runs = []
            for _ in range(3):
                catalogue = builtin if label == "warm" else Catalogue(builtin.codes)
                runs.append(timed_run(lambda r=request, c=catalogue: evaluate(r, c)))  # type: ignore[misc]
            if min(runs) > worst:
                worst, which = (
                    min(runs),
                    f"{len(request.timed)} codes x {next(iter(request.timed.values()))} min",
                )
        print(f"slowest tie request, {label}: {worst * 1e3:7.3f} ms ({which})")

    if not process:
        return
    whole, without = process[0], [t - min(start_up) for t in process[0]]
    print(f"units command start-up:    {min(start_up):7.3f} s (an empty array, min of 3)")
    print(row("units command (process):", whole))
    print(
        f"  ratio to in-process:      min {min(whole) / min(ours):5.2f} x  "
        f"median {statistics.median(whole) / statistics.median(ours):5.2f} x  "
        f"(without start-up {min(without) / min(ours):4.2f} x / "
        f"{statistics.median(without) / statistics.median(ours):4.2f} x)"
    )


if __name__ == "__main__":
    main()
