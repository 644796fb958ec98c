"""The printed day report reads well: no word, reference or code is broken inside a column,
even with the longest references, names and statuses the program accepts."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QSizeF
from PySide6.QtGui import QTextDocument, QTextOption

from tests.fakes import FakeClock
from tests.test_export import CATALOGUE
from therapy_timer.billing import ClaimDay
from therapy_timer.clinic import Clinic
from therapy_timer.codes import FurnishedBy, Role
from therapy_timer.gui import report_pdf
from therapy_timer.gui.report_pdf import (
    FONT_SIZES,
    NO_BREAK_HYPHEN,
    WORD_JOINER,
    fitted_document,
    report_document,
    report_html,
    write_pdf,
)
from therapy_timer.store import Store

# The longest references the program accepts (20 characters) and long real-world names, with
# the characters Unicode would break a line after: hyphens, slashes, dashes.
LONG_REFS = ("MRN-4471/2025-ABCDEF", "MRN-44710000000000-X", "Z/Y/X-W.V#U_T-123456")
LONG_NAMES = (
    "Alexandra Montgomery-Smith",
    "Bartholomew-Christopher Featherstonehaugh",
    "Dee Park",
)
LONG_PAYER = "BlueCross/BlueShield Commercial (per-code)"
# The longest names it accepts (80 characters) without a space anywhere.
HUGE_NAMES = (
    "Alexandra-Montgomery-Smith-Oyelaran/Fitzgerald-Worthington-Featherstonehaugh-Von",
    "Bartholomew-Christopher-Vanderbilt-Featherstonehaugh/Montgomery-Smith-Oyelaran-X",
    "Dee-Park",
)
HUGE_PAYER = "BlueCross/BlueShield-Commercial-Per-Code-Northwest-Region-Of-The-Pacific-Coast-X"


@pytest.fixture
def long_days(tmp_path: Path) -> Iterator[list[ClaimDay]]:
    yield from claim_days(tmp_path, LONG_NAMES, LONG_PAYER)


@pytest.fixture
def huge_days(tmp_path: Path) -> Iterator[list[ClaimDay]]:
    yield from claim_days(tmp_path, HUGE_NAMES, HUGE_PAYER)


def claim_days(tmp_path: Path, names: tuple[str, ...], payer: str) -> Iterator[list[ClaimDay]]:
    """A PT and a PTA session for each reference (pooled into one claim day), warnings,
    a long payer name, and a claim day amended after export."""
    clock = FakeClock()
    with Store.open(tmp_path / "data", clock=clock, actor="desk") as store:
        clinic = Clinic(store, CATALOGUE, clock, actor="desk")
        clinic.add_payer_profile(payer, "ama")
        for n, (ref, name) in enumerate(zip(LONG_REFS, names, strict=True)):
            for role, by in ((Role.PT, FurnishedBy.THERAPIST), (Role.PTA, FurnishedBy.ASSISTANT)):
                session = clinic.open_session(
                    patient_ref=ref,
                    clinician=name if role is Role.PT else name[::-1],
                    role=role,
                    payer_profile=payer if n == 1 else "Medicare",
                )
                for code, minutes in (("97110", 5 + 4 * n), ("97140", 3), ("97530", 9)):
                    clinic.start(session.id, code, by)
                    clock.advance(minutes=minutes)
                clinic.end_session(session.id)
        # An exported day corrected afterwards: the longest status there is.
        first = clinic.claim_days(clinic.today())[0]
        clinic.mark_exported(list(first.session_ids))
        segment = clinic.segments(first.session_ids[0])[0]
        clinic.amend_segment(segment.id, reason="stopped late", minutes=4)
        days = clinic.claim_days(clinic.today())
        assert {d.status for d in days} >= {"amended after export"}
        yield days


def line_breaks(document: QTextDocument) -> list[tuple[str, str]]:
    """Every place the laid-out document starts a new line inside a paragraph: the text before
    and after it, as printed."""
    found = []
    for number in range(document.blockCount()):
        block = document.findBlockByNumber(number)
        text, layout = block.text(), block.layout()
        for index in range(1, layout.lineCount()):
            start = layout.lineAt(index).textStart()
            found.append((text[:start], text[start:]))
    return found


def printed(text: str) -> str:
    return text.replace(NO_BREAK_HYPHEN, "-").replace(WORD_JOINER, "")


def test_no_word_is_broken_inside_a_column(qtbot: object, long_days: list[ClaimDay]) -> None:
    document, layout = fitted_document(long_days)
    breaks = line_breaks(document)
    assert breaks  # the long names and warnings do wrap...
    for before, after in breaks:
        # ...at a space, or at a line break of their own (<br> is U+2028 inside a block).
        assert before[-1] in " \u2028", (printed(before[-30:]), printed(after[:30]))
    # The table fits the page: nothing runs into or past the margin.
    assert document.size().width() <= layout.paintRectPoints().width()
    whole = printed(document.toPlainText())
    for ref in LONG_REFS:
        assert ref in whole
    for name in LONG_NAMES:
        assert name in whole


def test_the_page_turns_landscape_only_when_portrait_cannot_hold_the_words(
    qtbot: object,
    long_days: list[ClaimDay],
) -> None:
    _document, layout = fitted_document(long_days[2:])  # "Dee Park" and a short payer
    assert layout.orientation().name == "Portrait"


def test_a_name_without_spaces_breaks_after_its_own_hyphens_never_inside_a_word(
    qtbot: object, huge_days: list[ClaimDay]
) -> None:
    document, layout = fitted_document(huge_days)
    breaks = line_breaks(document)
    assert any(before[-1] in "-/" for before, _after in breaks)
    for before, after in breaks:
        assert before[-1] in " \u2028-/", (printed(before[-30:]), printed(after[:30]))
    assert document.size().width() <= layout.paintRectPoints().width()
    assert all(name in printed(document.toPlainText()).replace("\n", "") for name in HUGE_NAMES)


def test_warnings_on_paper_say_what_the_rule_number_means(long_days: list[ClaimDay]) -> None:
    html = printed(report_html(long_days))
    warnings = [w for d in long_days for w in d.result.warnings]
    assert warnings
    for warning in warnings:
        assert f"{warning.rule} {warning.gist}</b> &mdash; " in html
        assert warning.message.partition(". ")[0] in html


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="poppler-utils not installed")
def test_the_pdf_text_holds_every_reference_and_name_whole(
    qtbot: object, long_days: list[ClaimDay], tmp_path: Path
) -> None:
    out = tmp_path / "day.pdf"
    write_pdf(long_days, out)
    text = subprocess.run(
        ["pdftotext", "-layout", str(out), "-"], check=True, capture_output=True, text=True
    ).stdout
    words = set(re.split(r"\s+", printed(text)))
    for ref in LONG_REFS:
        assert ref in words
    for part in " ".join(LONG_NAMES).split():
        assert any(part in word for word in words), part
    assert "amended" in words and "export" in words


def test_a_day_that_fits_is_laid_out_once_in_the_largest_size(
    qtbot: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Qt rounds a full-width table's width up to a whole point: this day, whose words fit
    8-point text with room to spare, came out 545 points wide on Letter's 544, so it was laid
    out again (a month of a 20-clinician clinic: 12 of its 23 s laying out) and printed in 7.5."""
    clock = FakeClock()
    with Store.open(tmp_path / "data", clock=clock) as store:
        clinic = Clinic(store, CATALOGUE, clock)
        for n in range(3):  # 97110 and 97530 tie for the leftover minutes (R2.8's warning)
            session = clinic.open_session(
                patient_ref=f"MRN{n:06d}",
                clinician=f"Clinician {n:02d}",
                role=Role.PT,
                payer_profile="Medicare",
            )
            for code, minutes in (("97110", 20), ("97530", 5)):
                clinic.start(session.id, code)
                clock.advance(minutes=minutes)
            clinic.end_session(session.id)
        days = clinic.claim_days(clinic.today())
    laid_out: list[float] = []

    def counted(html: str, page: QSizeF, points: float, wrap: QTextOption.WrapMode) -> object:
        laid_out.append(points)
        return report_document(html, page, points, wrap)

    monkeypatch.setattr(report_pdf, "report_document", counted)
    document, layout = fitted_document(days)
    assert laid_out == [FONT_SIZES[0]]  # [8.0, 7.5] before
    assert layout.orientation().name == "Portrait"
    assert document.defaultFont().pointSizeF() == FONT_SIZES[0]
    assert document.size().width() <= layout.paintRectPoints().width()
