"""Front-desk export and consolidation: rows against the rules, files, bundles, bad bundles."""

from __future__ import annotations

import csv
import io
import json
import os
import random
import re
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.fakes import FakeClock
from therapy_timer import export as ex
from therapy_timer.cli import Context, main
from therapy_timer.clinic import Clinic
from therapy_timer.codes import FurnishedBy, Method, Role, builtin_catalogue
from therapy_timer.errors import InvalidInput
from therapy_timer.store import Store

CATALOGUE = builtin_catalogue()
TIMED = ["97110", "97112", "97116", "97140", "97530", "97035"]


def generate_day(
    clinic: Clinic, store: Store, clock: FakeClock, count: int, seed: int = 7
) -> list[str]:
    """Closed sessions with random codes, furnished-by switches and untimed services."""
    rng = random.Random(seed)
    ids = []
    for n in range(count):
        role = rng.choice([Role.PT, Role.PTA, Role.OT])
        session = clinic.open_session(
            patient_ref=f"P{n:03d}",
            clinician=f"Clin {n % 3}",
            role=role,
            payer_profile=rng.choice(["Medicare", "Commercial (per-code)"]),
        )
        for code in rng.sample(TIMED, rng.randint(1, 3)):
            by = rng.choice(list(FurnishedBy))
            clinic.start(session.id, code, by)
            clock.advance(minutes=rng.randint(3, 25), seconds=rng.randint(0, 59))
        if rng.random() < 0.4:
            store.add_untimed(session.id, code="97161", minutes=rng.choice([None, 30]))
        clinic.end_session(session.id)
        ids.append(session.id)
    return ids


def test_csv_rows_match_the_rules_line_by_line(
    clinic: Clinic, store: Store, clock: FakeClock
) -> None:
    # Rows are claim days now (issue 11, R1.2); every patient of generate_day is seen once, so
    # each day is one session and its lines are that session's summary. A day billing nothing
    # still appears, on one 0-unit row that says why, so the desk sees every visit.
    ids = generate_day(clinic, store, clock, 12)
    days = clinic.claim_days(clock.now().astimezone().date())
    assert sorted(d.session_ids for d in days) == sorted((i,) for i in ids)
    buffer = io.StringIO()
    count = ex.write_csv(days, buffer)
    text = buffer.getvalue()
    assert text.startswith("\ufeff") and "\r\n" in text
    rows = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))
    assert len(rows) == count
    assert list(rows[0]) == list(ex.CSV_COLUMNS)
    expected = []
    for session_id in [d.session_ids[0] for d in days]:
        session = store.get_session(session_id)
        result = clinic.summary(session_id)
        minutes = {c.code: c.minutes for c in result.codes}
        common = {
            "date_of_service": session.date_of_service.isoformat(),
            "patient_ref": session.patient_ref,
            "discipline": session.discipline.value,
            "payer_profile": session.payer_profile,
        }
        tail = {
            "total_timed_minutes": str(result.total_timed_minutes),
            "total_treatment_minutes": str(result.total_treatment_minutes),
            "clinicians": f"{session.clinician} ({session.role.value})",
            "session_ids": session_id,
            "amended": "no",
            # Only what the biller must act on, as "rule: gist" (information stays in the note).
            "warnings": " | ".join(
                f"{w.rule}: {w.gist}" for w in result.warnings if w.severity.value == "act"
            ),
            "status": "closed",
        }
        for line in result.lines:  # billable lines only: zero-unit codes stay in the note
            expected.append(
                {
                    **common,
                    "code": line.code,
                    "modifiers": " ".join(line.modifiers),
                    "units": str(line.units),
                    "minutes": str(minutes[line.code]),
                    **tail,
                    "remark": "",
                }
            )
        if not result.lines:
            recorded = ", ".join(f"{c.code} {c.minutes} min" for c in result.codes)
            expected.append(
                {
                    **common,
                    "code": "",
                    "modifiers": "",
                    "units": "0",
                    "minutes": str(result.total_timed_minutes),
                    **tail,
                    "remark": f"nothing billable: {recorded}: "
                    + (
                        f"{result.total_timed_minutes} timed minutes for the day, under the 8 "
                        "of a unit"
                        if session.payer_profile == "Medicare"
                        else "each code under the 8 minutes of a unit"
                    ),
                }
            )
    assert rows == expected
    for day in days:  # time in and out, as SQLite aggregates them, against the segments
        segments = store.segments(day.session_ids[0])
        assert day.time_in == min(seg.start_utc for seg in segments)
        assert day.time_out == max(seg.stop_utc for seg in segments if seg.stop_utc)


@pytest.mark.parametrize(
    ("cell", "safe"),
    [
        ("=HYPERLINK(1)", "'=HYPERLINK(1)"),
        ("+1", "'+1"),
        ("-2", "'-2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("Ann Lee", "Ann Lee"),
        ("97110", "97110"),
        ("", ""),
    ],
)
def test_formula_cells_are_neutralised(cell: str, safe: str) -> None:
    assert ex.neutralise(cell) == safe


def test_a_formula_in_a_clinician_name_reaches_the_csv_neutralised(
    clinic: Clinic, store: Store, clock: FakeClock
) -> None:
    session = clinic.open_session(
        patient_ref="JD", clinician="=cmd|' /C calc'!A0", role=Role.PT, payer_profile="Medicare"
    )
    clinic.start(session.id, "97110")
    clock.advance(minutes=20)
    clinic.end_session(session.id)
    buffer = io.StringIO()
    ex.write_csv(clinic.claim_days(clock.now().astimezone().date()), buffer)
    (row,) = csv.DictReader(io.StringIO(buffer.getvalue().lstrip("\ufeff")))
    assert row["clinicians"] == "'=cmd|' /C calc'!A0 (PT)"


def test_open_sessions_are_never_exported_silently(
    clinic: Clinic, store: Store, clock: FakeClock
) -> None:
    generate_day(clinic, store, clock, 2)
    still = clinic.open_session(
        patient_ref="OPEN1", clinician="Ann", role=Role.PT, payer_profile="Medicare"
    )
    days = clinic.claim_days(clock.now().astimezone().date())
    with pytest.raises(ex.OpenSessionsInRange, match="OPEN1"):
        ex.refuse_open(days)
    assert [d.status for d in days if still.id in d.session_ids] == ["open"]


def pdf_pages(path: Path) -> int:
    return len(re.findall(rb"/Type\s*/Page[^s]", path.read_bytes()))


def test_pdf_has_a_page_per_day(
    qtbot: object, clinic: Clinic, store: Store, clock: FakeClock, tmp_path: Path
) -> None:
    from therapy_timer.gui.report_pdf import loosened, report_html, write_pdf

    first_day = clock.now().astimezone().date()
    generate_day(clinic, store, clock, 3)
    clock.advance(minutes=24 * 60)
    generate_day(clinic, store, clock, 2, seed=8)
    days = clinic.claim_days(first_day, first_day + timedelta(days=1))
    out = tmp_path / "day.pdf"
    write_pdf(days, out)
    assert out.read_bytes().startswith(b"%PDF")
    assert pdf_pages(out) == 2
    html = loosened(report_html(days))  # as read: hyphens that do not break read as hyphens
    assert html.count("Totals per clinician") == 2
    assert "Clin 0 (" in html
    # On paper: the warnings' rules and gist under their claim, and a total for the day.
    for day in days:
        for warning in day.result.warnings:
            sentence = warning.message.partition(". ")[0]
            assert f"{warning.rule} {warning.gist}</b> &mdash; {sentence}" in html
    first = [d for d in days if d.date_of_service == first_day]
    sessions = sum(len(d.visits) for d in first)
    assert f"<b>All clinicians</b></td><td align=right><b>{sessions}</b>" in html


def bundle_file(store: Store, clock: FakeClock, path: Path, workstation: str = "room-2") -> Path:
    day = clock.now().astimezone().date()
    records = store.session_records([s.id for s in store.list_sessions(day=day)])
    path.write_text(json.dumps(ex.make_bundle(records, workstation=workstation, now=clock.now())))
    return path


def test_bundles_import_idempotently_and_report_conflicts(
    clinic: Clinic, store: Store, clock: FakeClock, tmp_path: Path
) -> None:
    ids = generate_day(clinic, store, clock, 4)
    bundle = bundle_file(store, clock, tmp_path / "room2.json")
    with Store.open(tmp_path / "desk", clock=clock, actor="desk") as desk:
        report = Clinic(desk, CATALOGUE, clock).import_bundles([bundle])
        assert set(report.added) == set(ids) and not report.conflicts
        desk_service = Clinic(desk, CATALOGUE, clock)
        for session_id in ids:
            assert desk.get_session(session_id).origin == "room-2"
            assert desk_service.summary(session_id).lines == clinic.summary(session_id).lines
        audit_before = len(desk.audit_entries())
        again = Clinic(desk, CATALOGUE, clock).import_bundles([bundle])
        assert set(again.unchanged) == set(ids) and not again.added and not again.conflicts
        assert len(desk.audit_entries()) == audit_before  # nothing written the second time

        # The same session amended at the station afterwards: a conflict, kept aside.
        segment = store.segments(ids[0])[0]
        clinic.amend_segment(segment.id, reason="started late", minutes=1)
        changed = bundle_file(store, clock, tmp_path / "room2-later.json")
        lines_before = desk_service.summary(ids[0]).lines
        third = Clinic(desk, CATALOGUE, clock).import_bundles([changed])
        assert third.conflicts == (ids[0],)
        assert desk_service.summary(ids[0]).lines == lines_before  # never overwritten
        (kept,) = third.conflict_files
        assert json.loads(kept.read_text())["session"]["id"] == ids[0]


def test_an_import_lists_the_folder_of_kept_aside_versions_once(
    clinic: Clinic,
    store: Store,
    clock: FakeClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each version kept aside swept the folder for leftovers of its own file: the folder
    was listed once per conflict, and it keeps every version ever kept aside, so an import
    of a 20-clinician clinic's week (2,001 conflicts) matched 2 million names."""
    ids = generate_day(clinic, store, clock, 30)
    bundle = tmp_path / "room2.json"
    made = ex.make_bundle(store.session_records(ids), workstation="room-2", now=clock.now())
    bundle.write_text(json.dumps(made))
    records = json.loads(bundle.read_text())
    for record in records["sessions"]:
        record["clinician"] += " (room 3)"
    records["workstation"] = "room-3"
    changed = tmp_path / "room3.json"
    changed.write_text(json.dumps(records))
    with Store.open(tmp_path / "desk", clock=clock, actor="desk") as desk:
        desk_clinic = Clinic(desk, CATALOGUE, clock)
        desk_clinic.import_bundles([bundle])
        folder = desk_clinic.data_dir / ex.CONFLICTS_DIRNAME
        folder.mkdir(mode=0o700)
        # A dead writer's temporary file (no process holds it) goes, as before.
        leftover = folder / f".{ids[0]}-from-room-3.json.abcd1234.partial"
        leftover.write_text("{")
        listed: list[str] = []
        listdir = os.listdir

        def counted(path: str | os.PathLike[str]) -> list[str]:
            listed.append(str(path))
            return listdir(path)

        monkeypatch.setattr(os, "listdir", counted)
        report = desk_clinic.import_bundles([changed])
        assert set(report.conflicts) == set(ids)
        assert listed.count(str(folder)) == 1  # 30 before
        assert not leftover.exists()
        assert len(list(folder.iterdir())) == 30


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"format": "therapy-timer-bundle", "version": 1, "sessi', "not valid JSON"),
        (
            '{"format": "therapy-timer-bundle", "version": 99, "workstation": "x", "sessions": []}',
            "version 99",
        ),
        ("just some text", "not valid JSON"),
        ('{"format": "something-else"}', "not a Therapy Timer bundle"),
        (
            '{"format": "therapy-timer-bundle", "version": 1, "workstation": "x", '
            '"sessions": [{"id": "nope"}]}',
            "'nope' is not an id",
        ),
        ("GOOD-BUT-AMENDED-AS-TEXT", "amended is 'yes', not bool"),
        ("GOOD-BUT-AUDIT-WITHOUT-TIME", "damaged"),
    ],
)
def test_bad_bundles_are_named_and_change_nothing(
    clinic: Clinic,
    store: Store,
    clock: FakeClock,
    tmp_path: Path,
    content: str,
    message: str,
) -> None:
    generate_day(clinic, store, clock, 2)
    good = bundle_file(store, clock, tmp_path / "good.json")
    bad = tmp_path / "bad.json"
    if content.startswith("GOOD-BUT"):  # a real bundle damaged in one place
        data = json.loads(good.read_text())
        if content.endswith("AS-TEXT"):
            data["sessions"][-1]["amended"] = "yes"
        else:
            del data["sessions"][-1]["audit"][0]["at_utc"]
        content = json.dumps(data)
    bad.write_text(content)
    with Store.open(tmp_path / "desk", clock=clock) as desk:
        with pytest.raises(InvalidInput, match=message) as caught:
            Clinic(desk, CATALOGUE, clock).import_bundles([good, bad])
        assert "bad.json" in str(caught.value)
        assert desk.list_sessions() == []  # the good file was not half-imported either


def test_export_and_import_commands(tmp_path: Path) -> None:
    clock = FakeClock()
    runner = CliRunner()

    def run(data: Path, *args: str, status: int = 0) -> str:
        result = runner.invoke(main, list(args), obj=Context(data, clock))
        assert result.exit_code == status, result.output
        return result.stdout

    station, desk = tmp_path / "station", tmp_path / "desk"
    run(station, "timer", "start", "97110", "--patient", "JD")
    clock.advance(minutes=33)
    day = clock.now().astimezone().date().isoformat()
    assert (
        "still open"
        in runner.invoke(main, ["export", "--date", day], obj=Context(station, clock)).stderr
    )
    run(station, "session", "end")
    csv_text = run(station, "export", "--date", day)
    assert "97110,GP,2,33" in csv_text
    listed = json.loads(run(station, "session", "list", "--date", day, "--json"))
    assert listed[0]["exported"] is False  # looking at the day on the terminal bills nothing
    csv_file = tmp_path / "day.csv"
    run(station, "export", "--date", day, "--out", str(csv_file))
    assert csv_file.read_text(encoding="utf-8") == csv_text  # the preview is the file
    listed = json.loads(run(station, "session", "list", "--date", day, "--json"))
    assert listed[0]["exported"] is True
    exported_json = json.loads(run(station, "export", "--date", day, "--format", "json"))
    # One entry per claim day (issue 11), its sessions inside it.
    (claim,) = exported_json["claim_days"]
    assert claim["total_timed_units"] == 2 and len(claim["sessions"]) == 1
    bundle = tmp_path / "b.json"
    run(station, "export", "--date", day, "--format", "bundle", "--out", str(bundle))
    assert run(desk, "import", str(bundle)).startswith("added 1, unchanged 0, conflicts 0")
    assert run(desk, "import", str(bundle)).startswith("added 0, unchanged 1, conflicts 0")
    pdf = tmp_path / "d.pdf"
    run(desk, "export", "--date", day, "--format", "pdf", "--out", str(pdf))
    assert pdf.read_bytes().startswith(b"%PDF") and pdf.stat().st_mode & 0o077 == 0
    assert (
        "before"
        in runner.invoke(
            main, ["export", "--date", day, "--to", "2000-01-01"], obj=Context(desk, clock)
        ).stderr
    )


def test_a_range_is_inclusive(clinic: Clinic, store: Store, clock: FakeClock) -> None:
    start = clock.now().astimezone().date()
    generate_day(clinic, store, clock, 1)
    clock.advance(minutes=2 * 24 * 60)
    generate_day(clinic, store, clock, 1, seed=3)
    assert len(clinic.claim_days(start, start + timedelta(days=2))) == 2
    assert len(clinic.claim_days(start)) == 1
    assert clinic.claim_days(date(2000, 1, 1)) == []
    with pytest.raises(InvalidInput, match="before"):
        clinic.claim_days(start, start - timedelta(days=1))


def test_a_bundle_carries_the_audit_of_removed_and_discarded_children(
    clinic: Clinic, store: Store, clock: FakeClock
) -> None:
    (session_id,) = generate_day(clinic, store, clock, 1, seed=1)
    segment = store.segments(session_id)[0]
    store.discard_segment(segment.id, reason="started by mistake")
    service_ = store.add_untimed(session_id, code="97161", reason="eval on paper")
    store.remove_untimed(service_.id, reason="billed on the other visit")
    (record,) = store.session_records([session_id])
    actions = [entry["action"] for entry in record["audit"]]
    assert "segment.discard" in actions
    assert actions.count("untimed.add") >= 1 and "untimed.remove" in actions
    assert [e["id"] for e in record["audit"]] == sorted(e["id"] for e in record["audit"])
    assert segment.id not in {s["id"] for s in record["segments"]}


def test_import_merges_many_files_and_says_why_a_conflict_was_kept_aside(
    clinic: Clinic, store: Store, clock: FakeClock, tmp_path: Path
) -> None:
    ids = generate_day(clinic, store, clock, 6, seed=8)
    one = bundle_file(store, clock, tmp_path / "one.json")
    same = bundle_file(store, clock, tmp_path / "same.json", workstation="room-3")
    # A payer profile of the same name with other rules at the desk: not this session's rules.
    with Store.open(tmp_path / "desk", clock=clock) as desk:
        desk.save_payer_profile(replace(store.get_payer_profile("Medicare"), method=Method.AMA))
        report = Clinic(desk, CATALOGUE, clock).import_bundles([one, same])
        medicare = [i for i in ids if store.get_session(i).payer_profile == "Medicare"]
        assert 0 < len(medicare) < len(ids)  # both kinds in the generated day
        assert sorted(report.conflicts) == sorted(medicare * 2)  # once from each file
        assert all("other rules here" in why for why in report.why)
        assert set(report.added) == set(ids) - set(medicare)
        # The second copy of an added session is the same session: unchanged, not a conflict.
        assert set(report.unchanged) == set(ids) - set(medicare)
        kept = json.loads(report.conflict_files[0].read_text())
        assert "other rules here" in kept["why"] and kept["session"]["id"] in medicare


def test_a_session_changed_after_export_is_flagged_and_exported_again(
    clinic: Clinic, store: Store, clock: FakeClock
) -> None:
    (session_id,) = generate_day(clinic, store, clock, 1, seed=5)
    day = clock.now().astimezone().date()
    store.mark_exported([session_id])
    assert [c.status for c in clinic.claim_days(day)] == ["exported"]
    clock.advance(minutes=60)
    clinic.amend_segment(store.segments(session_id)[0].id, reason="stopped late", minutes=2)
    (claim,) = clinic.claim_days(day)
    assert claim.status == ex.AMENDED_AFTER_EXPORT
    (row, *_) = csv.DictReader(io.StringIO(ex.report_text([claim], "csv").lstrip("\ufeff")))
    assert row["status"] == "amended after export" and row["amended"] == "yes"
    store.mark_exported([session_id])
    assert [c.status for c in clinic.claim_days(day)] == ["exported"]
    exports = store.audit_entries(entity="session", entity_id=session_id)
    assert [e.action for e in exports].count("session.export") == 2


def test_include_open_lists_open_sessions_marked_open_and_does_not_mark_them(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    runner = CliRunner()
    data = tmp_path / "station"
    runner.invoke(main, ["timer", "start", "97110", "--patient", "JD"], obj=Context(data, clock))
    clock.advance(minutes=30)
    day = clock.now().astimezone().date().isoformat()
    result = runner.invoke(
        main, ["export", "--date", day, "--include-open"], obj=Context(data, clock)
    )
    assert result.exit_code == 0, result.output
    (row,) = csv.DictReader(io.StringIO(result.stdout.lstrip("\ufeff")))
    assert (row["patient_ref"], row["code"], row["status"]) == ("JD", "97110", "open")
    listed = runner.invoke(
        main, ["session", "list", "--date", day, "--json"], obj=Context(data, clock)
    )
    assert json.loads(listed.stdout)[0]["exported"] is False
