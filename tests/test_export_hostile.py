"""The CSV's fast path on hostile databases: times crossing midnight, zero-length, sub-second
and stretches longer than a day, a clock that jumped back (a stop written at another offset
before its start), hostile text in every free-text cell (formula starts, quotes, commas, a
lone carriage return, NUL, a byte-order mark, non-ASCII, a 3,000-character reference), payers
and clinicians named like formulas, and a clinic codes.toml that rewords a built-in code and
adds its own. Each database is exported twice in one process, and by the full path
(every stopwatch restored, every answer with its note): the files must be the same, and every
cell must be what neutralising it gives (the fast path skips neutralise where a cell cannot
start a formula).
"""

from __future__ import annotations

import csv
import io
import json
import random
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from unittest import mock

import pytest

from tests.fakes import FakeClock
from therapy_timer import billing
from therapy_timer import export as ex
from therapy_timer.clinic import Clinic
from therapy_timer.codes import builtin_catalogue
from therapy_timer.store import Store

NOW = datetime(2025, 12, 1, 9, tzinfo=UTC)
DATES = (
    date(2019, 6, 3),
    date(2021, 5, 5),
    date(2025, 3, 9),  # a change to daylight saving time in the US
    date(2025, 3, 10),
    date(2025, 11, 2),  # and back
)
CODES = ("97110", "97140", "97530", "97112", "97012", "97161", "97150", "X9999", "97129", "g0283")
REFS: tuple[str, ...] = ("AB", "MRN1", "mrn1", "=HYPERLINK(1)", "+1", " -2", "@x", "a,b")
REFS += ('q"q', "é\u00a0é", "\ufeffbom", "cr\ronly", "nl\nx", "\tT", "nul\x00x", "x" * 3000)
CLINICIANS = ("Ann", "Bob", "=Eve", "Zoë, PTA")
PAYERS = ("Medicare", "Medicare", "Commercial (per-code)", "No CQ", "-evil")
CLINIC_CODES = """
[[code]]
code = "97110"
kind = "timed"
description = "=Our own exercise, with a comma"
disciplines = ["PT", "OT"]

[[code]]
code = "X9999"
kind = "timed"
description = "Clinic gadget"
disciplines = ["PT"]
medicare_note = "Bill it as 97530 for Medicare"
"""
ZONES = (UTC, timezone(timedelta(hours=1)), timezone(timedelta(hours=-5)))


def _moment(at: datetime, zone: timezone) -> str:
    return at.astimezone(zone).isoformat(timespec="microseconds")


def _build(data: Path, rnd: random.Random) -> None:
    """Rows written as they are stored (raw SQL: shapes the window never writes)."""
    with Store.open(data, clock=FakeClock(NOW), actor="test") as store:
        clinic = Clinic(store, builtin_catalogue(), FakeClock(NOW))
        clinic.add_payer_profile("No CQ", "cms", assistant_modifiers=False)
        clinic.add_payer_profile("-evil", "ama", assistant_modifiers=True)
        conn = store._conn
        with conn:
            for n in range(rnd.randint(4, 24)):
                sid = f"{n:02d}{rnd.getrandbits(120):030x}"
                day = rnd.choice(DATES)
                hour = datetime.combine(day, datetime.min.time(), UTC) + timedelta(
                    hours=rnd.choice((0, 13, 23)), minutes=rnd.choice((0, 50, 59))
                )
                state = rnd.choice(("closed",) * 5 + ("open", "running", "paused"))
                zone = rnd.choice(ZONES) if rnd.random() < 0.2 else UTC
                conn.execute(
                    "INSERT INTO sessions (id, date_of_service, patient_ref, clinician, role,"
                    " discipline, payer_profile, status, amended, exported, created_utc,"
                    " closed_utc, paused_utc, resume_json, allocation_json, open_duplicate)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        sid,
                        day.isoformat(),
                        rnd.choice(REFS[:3] * 4 + REFS),
                        rnd.choice(CLINICIANS),
                        rnd.choice(("PT", "PTA", "OT", "OTA", "SLP")),
                        rnd.choice(("PT", "PT", "OT", "SLP")),
                        rnd.choice(PAYERS),
                        "closed" if state == "closed" else "open",
                        int(rnd.random() < 0.3),
                        int(rnd.random() < 0.4),
                        _moment(hour, zone),
                        _moment(hour + timedelta(hours=5), zone) if state == "closed" else None,
                        _moment(hour + timedelta(hours=4), zone) if state == "paused" else None,
                        json.dumps([{"code": "97110", "furnished_by": "therapist"}])
                        if state == "paused"
                        else "[]",
                        rnd.choice((None, None, '{"97110": 1}', '{"97110": 2, "97140": 1}')),
                        n,
                    ],
                )
                count = rnd.randint(0, 5)
                for k in range(count):
                    code = rnd.choice(CODES)
                    start = hour + timedelta(microseconds=rnd.randint(0, 180 * 60_000_000))
                    shape = rnd.random()
                    if shape < 0.1:
                        length = timedelta(0)
                    elif shape < 0.2:
                        length = timedelta(microseconds=rnd.randint(1, 999_999))
                    elif shape < 0.25:
                        length = timedelta(hours=rnd.randint(20, 30))
                    elif shape < 0.3:  # a clock that jumped back, written at another offset
                        length = -timedelta(minutes=rnd.randint(1, 40))
                    else:
                        length = timedelta(seconds=rnd.randint(1, 3000), microseconds=777)
                    stop_zone = rnd.choice(ZONES) if length < timedelta(0) else zone
                    start_text = _moment(start, zone)
                    stop_text: str | None = _moment(start + length, stop_zone)
                    assert stop_text is not None
                    if stop_text < start_text:
                        continue  # the schema refuses a stop written before its start
                    if state == "running" and k == count - 1:
                        stop_text = None
                    conn.execute(
                        "INSERT INTO segments (id, session_id, code, furnished_by, exclusive,"
                        " start_utc, stop_utc) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        [
                            f"{sid}-{k}",
                            sid,
                            code,
                            rnd.choice(("therapist", "assistant", "together")),
                            int(code != "97012"),
                            start_text,
                            stop_text,
                        ],
                    )
                for _ in range(rnd.randint(0, 2)):
                    conn.execute(
                        "INSERT INTO untimed_services (session_id, code, minutes, furnished_by,"
                        " created_utc) VALUES (?, ?, ?, ?, ?)",
                        [
                            sid,
                            rnd.choice(("97150", "97012", "97161", "97010", "97165")),
                            rnd.choice((None, 0, 5, 30, 200)),
                            rnd.choice(("therapist", "assistant")),
                            _moment(hour, UTC),
                        ],
                    )
    if rnd.random() < 0.5:
        (data / "codes.toml").write_text(CLINIC_CODES)


@pytest.mark.parametrize("seed", range(24))
def test_a_hostile_databases_csv_is_the_full_paths_and_every_cell_is_neutral(
    tmp_path: Path, seed: int
) -> None:
    data = tmp_path / "data"
    _build(data, random.Random(seed))
    first, last = DATES[0], DATES[-1]
    with Clinic.open(data, clock=FakeClock(NOW)) as clinic:
        fast = clinic.export("csv", first, last, include_open=True, mark=False).text
        again = clinic.export("csv", first, last, include_open=True, mark=False).text
        with mock.patch.object(billing, "stopped_totals", return_value=None):
            full = ex.report_text(clinic.claim_days(first, last), "csv")
    assert fast is not None and fast == again == full
    rows = list(csv.reader(io.StringIO(fast.removeprefix("\ufeff"), newline="")))
    assert len(rows) > 1
    for row in rows[1:]:
        assert [ex.neutralise(cell) for cell in row] == row
