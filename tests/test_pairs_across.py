"""R9.3 across a patient's claims of one date: pairs different disciplines report with a modifier."""

from __future__ import annotations

import csv
import io
from datetime import time

from tests.fakes import FakeClock
from therapy_timer.clinic import Clinic
from therapy_timer.codes import Role


def _day(clinic: Clinic, ref: str, role: Role, code: str, payer: str = "Medicare") -> None:
    """A closed session of ``ref`` with ``code``: 20 minutes timed, or an untimed service."""
    who = {Role.PT: "Ann Lee", Role.OT: "Oli Ray"}[role]
    session = clinic.open_session(patient_ref=ref, clinician=who, role=role, payer_profile=payer)
    if code.startswith("9716"):
        clinic.add_untimed(session.id, code, minutes=30)
    else:
        clinic.add_forgotten_segment(
            session.id, code, start=time(9, 0), minutes=20, reason="typed for the test"
        )
    clinic.end_session(session.id)


def test_a_pt_test_and_an_ot_evaluation_of_one_date_and_payer_each_name_the_pair_r9_3(
    clinic: Clinic, clock: FakeClock
) -> None:
    """R9.3: 97750/97755/97763 with any evaluation, 97760/97761 with a re-evaluation, are
    not reported on one date by one specialty, and different specialties (PT vs OT) report
    both only with an NCCI-associated modifier. Under two plans of care they are two claim
    days (§11 Q3), each billing its code with no word of the other's: both now say so, in
    the day view and the CSV. Another payer's claim, other codes or an evaluation beside
    97760 (which pairs with a re-evaluation only) draw nothing."""
    clinic.add_payer_profile("Acme PPO", "cms", assistant_modifiers=False)
    _day(clinic, "MRN1", Role.PT, "97750")
    _day(clinic, "MRN1", Role.OT, "97165")
    _day(clinic, "MRN2", Role.PT, "97760")
    _day(clinic, "MRN2", Role.OT, "97168")
    _day(clinic, "MRN3", Role.PT, "97760")  # with an evaluation: no pair
    _day(clinic, "MRN3", Role.OT, "97165")
    _day(clinic, "MRN4", Role.PT, "97110")  # not a pair
    _day(clinic, "MRN4", Role.OT, "97165")
    _day(clinic, "MRN5", Role.PT, "97763")
    _day(clinic, "MRN5", Role.OT, "97166", payer="Acme PPO")  # another payer's claim
    day = clinic.today()
    pairs = {
        (d.patient_ref, d.discipline.value): [w for w in d.result.warnings if w.rule == "R9.3"]
        for d in clinic.claim_days(day)
    }
    for ref, own, other in (("MRN1", "97750", "97165"), ("MRN2", "97760", "97168")):
        for discipline in ("PT", "OT"):
            (warning,) = pairs[(ref, discipline)]
            assert own in warning.message and other in warning.message
            assert "modifier" in warning.message and warning.severity.value == "act"
    for ref in ("MRN3", "MRN4", "MRN5"):
        assert pairs[(ref, "PT")] == pairs[(ref, "OT")] == []
    exported = clinic.export("csv", day).text
    assert exported is not None
    rows = list(csv.DictReader(io.StringIO(exported.removeprefix("\ufeff"), newline="")))
    flagged = {(r["patient_ref"], r["discipline"]): "R9.3" in r["warnings"] for r in rows}
    assert flagged == {
        (ref, discipline): ref in ("MRN1", "MRN2")
        for ref in ("MRN1", "MRN2", "MRN3", "MRN4", "MRN5")
        for discipline in ("PT", "OT")
    }
