"""One clinician, however the name was typed: Kim, kim and a fullwidth K (U+FF2B) are one person."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from tests.fakes import FakeClock, new_segment
from tests.test_cli_sessions import Cli
from therapy_timer import rules
from therapy_timer.clinic import Clinic
from therapy_timer.codes import Discipline, Role
from therapy_timer.errors import InvalidInput, InvalidOperation
from therapy_timer.model import Change, Session, clinician_key
from therapy_timer.store import Store
from therapy_timer.store._db import ts

FULLWIDTH_KIM = "\uff2bim"  # what a Japanese input method left on, or a paste, types


def open_for(clinic: Clinic, ref: str, clinician: str) -> Session:
    return clinic.open_session(
        patient_ref=ref, clinician=clinician, role=Role.PT, payer_profile="Medicare"
    )


def variant_open_session(store: Store, session: Session, clinician: str) -> Session:
    """A second open session of ``session``'s patient under another spelling, a second after
    it, as an older version let in (the database's own index compares names exactly)."""
    variant = str(uuid.uuid4())
    store._conn.execute(
        "INSERT INTO sessions (id, date_of_service, patient_ref, clinician, role, discipline,"
        " payer_profile, status, created_utc)"
        " SELECT ?, date_of_service, patient_ref, ?, role, discipline, payer_profile, status,"
        " ? FROM sessions WHERE id = ?",
        [variant, clinician, ts(session.created_utc + timedelta(seconds=1), "created"), session.id],
    )
    return store.get_session(variant)


@pytest.mark.parametrize(
    ("one", "other", "same"),
    [
        ("Kim", "kim", True),
        ("Kim", FULLWIDTH_KIM, True),
        ("Kim", " KIM ", True),
        ("Kim Lee", "kim\u00a0 lee", True),  # a no-break space, two spaces
        ("Straße", "STRASSE", True),
        ("Kim", "Kimberly", False),
        ("Kim Lee", "KimLee", False),
    ],
)
def test_clinician_names_are_one_person_under_nfkc_case_and_spaces(
    one: str, other: str, same: bool
) -> None:
    assert (clinician_key(one) == clinician_key(other)) is same


@pytest.mark.parametrize("variant", ["kim", FULLWIDTH_KIM, "KIM"])
def test_a_variant_spelling_cannot_open_a_second_session_for_the_patient(
    clinic: Clinic, store: Store, variant: str
) -> None:
    first = open_for(clinic, "MRN-1", "Kim")
    with pytest.raises(
        InvalidOperation, match=f"MRN-1 already has an open session with Kim .*{first.id}"
    ):
        open_for(clinic, "MRN-1", variant)
    assert [s.id for s in clinic.open_sessions()] == [first.id]


def test_a_variant_spelling_stops_kims_one_on_one_code_for_another_patient(
    clinic: Clinic, store: Store, clock: FakeClock
) -> None:
    a, b = open_for(clinic, "AA-1", "Kim"), open_for(clinic, "BB-2", FULLWIDTH_KIM)
    clinic.start(a.id, "97110")
    clock.advance(minutes=12)
    outcome = clinic.start(b.id, "97140")
    assert [e.session.id for e in outcome.elsewhere] == [a.id]
    assert {s.code for s in store.open_segments(a.id)} == set()
    clock.advance(minutes=10)
    assert clinic.rules_input(a.id).timed == {"97110": 12}


def test_r8_3_counts_variant_spellings_as_one_clinician(
    clinic: Clinic, store: Store, clock: FakeClock
) -> None:
    a, b = open_for(clinic, "AA-1", "Kim"), open_for(clinic, "BB-2", FULLWIDTH_KIM)
    clinic.start(a.id, "97110")
    clock.advance(minutes=10)
    # Rows from an older version, or a bundle: the same person timed two patients at once.
    store.apply_stopwatch_change(Change(b.id, opened=(new_segment(b.id, "97110", clock.now()),)))
    clock.advance(minutes=10)
    for session in (a, b):
        clinic.end_session(session.id)

    def flagged(result: rules.Result) -> list[str]:
        return [w.message for w in result.warnings if w.rule == "R8.3"]

    assert "BB-2" in flagged(clinic.summary(a.id))[0]
    assert "AA-1" in flagged(clinic.summary(b.id))[0]
    days = {d.patient_ref: d for d in clinic.claim_days(a.date_of_service)}
    assert [w.rule for w in days["AA-1"].result.warnings].count("R8.3") == 1
    assert [w.rule for w in days["BB-2"].result.warnings].count("R8.3") == 1


def test_variants_already_stored_read_as_one_clinician_and_keep_their_spelling(
    clinic: Clinic, store: Store, clock: FakeClock
) -> None:
    kim = open_for(clinic, "MRN-1", "Kim")
    other = variant_open_session(store, kim, FULLWIDTH_KIM)
    clock.advance(minutes=1)
    bo = open_for(clinic, "MRN-1", "Bo Chen")
    # Nothing rewrote the stored name: each session shows the spelling it was typed with.
    assert store.get_session(other.id).clinician == FULLWIDTH_KIM
    # Two open sessions of one person for one patient: listed for someone to close one.
    assert [[s.id for s in group] for group in store.open_duplicates()] == [[kim.id, other.id]]
    with pytest.raises(InvalidOperation, match="2 sessions are open for patient MRN-1"):
        clinic.session_to_act_on(patient="MRN-1", session=None, clinician="KIM")
    assert clinic.session_to_act_on(patient="MRN-1", session=None, clinician="bo chen") == bo
    day = kim.date_of_service
    assert {s.id for s in clinic.list_sessions(day=day, clinician="kim")} == {kim.id, other.id}
    (claim,) = clinic.claim_days(day, clinician=" KIM ")
    # The day's clinicians: one person, under the first spelling, beside the other clinician.
    assert claim.clinicians == ("Kim (PT)", "Bo Chen (PT)")


def test_a_day_of_two_spellings_lists_the_clinician_once_in_the_csv(
    clinic: Clinic, clock: FakeClock
) -> None:
    morning = open_for(clinic, "MRN-1", "Kim")
    clinic.start(morning.id, "97110")
    clock.advance(minutes=10)
    clinic.end_session(morning.id)
    clock.advance(minutes=60)
    afternoon = open_for(clinic, "MRN-1", "kim")
    clinic.start(afternoon.id, "97110")
    clock.advance(minutes=10)
    clinic.end_session(afternoon.id)
    for clinician in (None, "KIM"):
        text = clinic.export("csv", morning.date_of_service, clinician=clinician).text or ""
        (row,) = text.splitlines()[1:]
        assert ",Kim (PT)," in row and "kim (PT)" not in row


def test_favourites_are_the_clinicians_whatever_the_spelling(clinic: Clinic) -> None:
    clinic.save_favourites("Kim", ["97110", "97140"])
    assert clinic.favourites(FULLWIDTH_KIM, Discipline.PT) == ["97110", "97140"]
    clinic.save_favourites("kim", ["97530"])
    assert clinic.favourites("Kim", Discipline.PT) == ["97530"]


def test_favourites_an_older_version_kept_under_the_typed_name_are_found(
    clinic: Clinic, store: Store
) -> None:
    store.set_setting("gui.favourites.Kim Lee", "97140,97110")
    assert clinic.favourites("kim  lee", Discipline.PT) == ["97140", "97110"]
    assert store.get_setting("gui.favourites.Kim Lee") == "97140,97110"  # not rewritten


def test_the_command_line_takes_a_variant_spelling_for_the_same_clinician(
    tmp_path: Path,
) -> None:
    cli = Cli(tmp_path)
    cli("timer", "start", "97110", "--patient", "MRN-1", "--clinician", "Kim")
    cli.clock.advance(minutes=5)
    # The same person's own session of the patient: 97110 stops, 97140 starts in it.
    out = cli("timer", "start", "97140", "--patient", "MRN-1", "--clinician", FULLWIDTH_KIM)
    assert out.stdout == "stopped 97110\nstarted 97140\n"
    cli("timer", "start", "97530", "--patient", "MRN-2", "--clinician", "kim")
    cli("timer", "start", "97530", "--patient", "MRN-3", "--clinician", "Kimberly")
    cli.clock.advance(minutes=10)
    for patient in ("MRN-1", "MRN-2", "MRN-3"):
        cli("session", "end", "--patient", patient)
    day = cli.clock.now().date().isoformat()
    rows = cli("export", "--date", day, "--clinician", " KIM ").stdout.splitlines()[1:]
    assert [row.split(",")[1] for row in rows] == ["MRN-1", "MRN-2"]  # not Kimberly's MRN-3


# Characters Unicode says to show as nothing (Default_Ignorable_Code_Point) that are not format
# characters, so the check of a typed name lets them through: a combining grapheme joiner, a
# variation selector, the Hangul fillers a blank-name trick uses.
INVISIBLE = ["\u034f", "\ufe0f", "\u3164", "\uffa0", "\u115f", "\u17b4", "\U000e0100"]


@pytest.mark.parametrize("invisible", INVISIBLE)
def test_a_character_that_shows_as_nothing_makes_no_second_clinician(
    clinic: Clinic, invisible: str
) -> None:
    assert clinician_key(f"Kim{invisible}") == clinician_key("kim")
    assert clinician_key(f"Kim{invisible} Lee") == clinician_key("kim lee")
    first = open_for(clinic, "MRN-1", "Kim")
    with pytest.raises(InvalidOperation, match="MRN-1 already has an open session with Kim "):
        open_for(clinic, "MRN-1", f"Kim{invisible}")
    assert [s.id for s in clinic.open_sessions()] == [first.id]


def test_an_invisible_name_runs_no_one_on_one_code_beside_kims(
    clinic: Clinic, store: Store, clock: FakeClock
) -> None:
    a, b = open_for(clinic, "AA-1", "Kim"), open_for(clinic, "BB-2", "Kim\u034f")
    clinic.start(a.id, "97110")
    clock.advance(minutes=12)
    outcome = clinic.start(b.id, "97140")
    assert [e.session.id for e in outcome.elsewhere] == [a.id]


@pytest.mark.parametrize("blank", ["\u3164", "\uffa0", "\u115f", "\u1160", "\u2800"])
def test_a_character_shown_as_a_blank_space_is_a_space_between_names(
    clinic: Clinic, blank: str
) -> None:
    """Fonts draw the Hangul fillers and the blank braille pattern as a space: 'Ann?Lee' read
    as Ann Lee and was keyed as AnnLee (or kept the pattern), a second clinician who could open
    a session for Ann Lee's patient beside hers."""
    assert clinician_key(f"Ann{blank}Lee") == clinician_key("Ann Lee")
    open_for(clinic, "MRN-1", "Ann Lee")
    with pytest.raises(InvalidOperation, match="MRN-1 already has an open session with Ann Lee"):
        open_for(clinic, "MRN-1", f"Ann{blank}Lee")


@pytest.mark.parametrize("blank", ["\u3164", "\uffa0 \u3164", "\u115f\u1160", "\u2800\u2800"])
def test_a_name_of_nothing_visible_is_refused_like_an_empty_one(clinic: Clinic, blank: str) -> None:
    with pytest.raises(InvalidInput, match="clinician: must show the clinician's name"):
        open_for(clinic, "MRN-1", blank)
    assert clinic.open_sessions() == []


@pytest.mark.parametrize(
    "name",
    [
        "Maria Guadalupe Fernanda de los Ángeles Rodríguez-Villanueva y Castillo",  # 71
        "Strauß " * 11,  # 76 characters, 87 once ß folds to ss
    ],
)
def test_a_long_name_keeps_its_favourites(clinic: Clinic, name: str) -> None:
    """Any name the check lets in: the setting's key (prefix and folded name) was refused over
    80 characters, and the window's search box said 'key: must be 1 to 80 characters'."""
    clinic.open_session(patient_ref="MRN-1", clinician=name, role=Role.PT, payer_profile="Medicare")
    clinic.save_favourites(name, ["97110", "97140"])
    assert clinic.favourites(name.upper(), Discipline.PT) == ["97110", "97140"]


def test_the_name_an_older_window_gave_an_empty_clinician_field_is_not_offered_again(
    clinic: Clinic,
) -> None:
    """Before the window asked for a name it recorded an empty field as "Clinician", and
    remembered it: the next session would have been "Clinician" again without a word."""
    clinic.open_session(
        patient_ref="JD",
        clinician="Clinician",
        role=Role.PT,
        payer_profile="Medicare",
        remember=True,
    )
    assert clinic.remembered_header().clinician == ""
    clinic.open_session(
        patient_ref="KB", clinician="Ann Lee", role=Role.PT, payer_profile="Medicare", remember=True
    )
    assert clinic.remembered_header().clinician == "Ann Lee"
