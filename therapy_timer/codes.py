"""The billing-code catalogue: which codes exist, timed or not, for which discipline (data only)."""

from __future__ import annotations

import codecs
import datetime as dt
import errno
import functools
import json
import os
import re
import stat
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import field, replace
from enum import StrEnum
from functools import partial
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NoReturn

from therapy_timer.errors import InvalidInput, UnknownCode
from therapy_timer.frozen import frozen_record
from therapy_timer.paths import resource_file

if TYPE_CHECKING:
    from pathlib import Path

    FilePath = str | os.PathLike[str]

CODE_PATTERN = r"^(?:\d{5}|[A-Z]\d{4})$"
"""CPT codes are five digits; HCPCS level II codes are a letter and four digits (e.g. G0283).

Documents the form; ``normalize_code`` checks it with string methods (lookups are hot). The
patterns of this module are text, compiled by ``re`` on first use: compiling them at import
cost every start-up ~1 ms each (issue 13), and only the code file's checks use them."""

MAX_FILE_BYTES = 1 << 20
"""A clinic's code file larger than this (1 MiB, thousands of codes) is refused unread."""
MAX_DAY_MINUTES = 24 * 60
"""No code, service, segment or day holds more minutes than a calendar day has (R1.2); it sits
here, the lowest layer both ``model`` and ``rules`` import (``rules`` must not load ``model``:
the command's start-up stays small)."""
MAX_CODES = 2000
MAX_FAVOURITES = 40
MAX_DESCRIPTION = 100
MAX_NOTE = 300
_QUOTE_LIMIT = 80


class Discipline(StrEnum):
    """The plan of care a service is furnished under (billing-rules.md R6.3)."""

    PT = "PT"
    OT = "OT"
    SLP = "SLP"


class Role(StrEnum):
    """The clinician's licence; assistants furnish minutes that may need CQ/CO (R7.1)."""

    PT = "PT"
    PTA = "PTA"
    OT = "OT"
    OTA = "OTA"
    SLP = "SLP"

    @property
    def is_assistant(self) -> bool:
        return self in (Role.PTA, Role.OTA)

    @property
    def furnishes(self) -> FurnishedBy:
        """Who furnishes this clinician's minutes when nobody says: a PTA's or OTA's are their
        own (R7.1: they take CQ/CO), anyone else's the therapist's."""
        return FurnishedBy.ASSISTANT if self.is_assistant else FurnishedBy.THERAPIST

    @property
    def discipline(self) -> Discipline:
        return {
            "PT": Discipline.PT,
            "PTA": Discipline.PT,
            "OT": Discipline.OT,
            "OTA": Discipline.OT,
            "SLP": Discipline.SLP,
        }[self.value]


def article(letters: str) -> str:
    """The article before a discipline or role said letter by letter: "an OT", "an SLP" (and
    "an OT/PT plan of care"), "a PT"."""
    return "an" if letters[:1] in ("O", "S") else "a"


class FurnishedBy(StrEnum):
    """Who furnished a stretch of minutes. Joint minutes count once, for the therapist (R7.5)."""

    THERAPIST = "therapist"
    ASSISTANT = "assistant"
    TOGETHER = "together"


class Method(StrEnum):
    """How a payer turns minutes into units (rules §2 and §3; configurable per payer, R3.5)."""

    CMS = "cms"  # Medicare total-time method, the "8-minute rule" (§2)
    AMA = "ama"  # AMA/CPT per-code midpoint method (§3)


class Kind(StrEnum):
    """How a code is counted (billing-rules.md §5)."""

    TIMED = "timed"  # 15-minute units pooled by the 8-minute rule (§5.1)
    UNTIMED = "untimed"  # one unit per service (§5.2)
    SPECIAL = "special"  # not a plain 15-minute code: counted by hand (§5.3)


@frozen_record
class Code:
    """One billing code and the facts the rules need about it."""

    code: str
    kind: Kind
    description: str
    disciplines: frozenset[Discipline]
    constant_attendance: bool = False
    supervised_modality: bool = False
    evaluation: bool = False
    reevaluation: bool = False
    assistant_allowed: bool = True
    group: bool = False
    unlisted: bool = False
    medicare_note: str = ""
    handling: str = ""
    mue: int | None = None
    """The clinic's medically unlikely edit: the most units of the code a payer accepts on one
    date of service (R9.4). Never shipped: the values are not in the specification's sources
    and some are confidential, so only a clinic's codes.toml sets one."""

    def __init__(
        self,
        code: str,
        kind: Kind,
        description: str,
        disciplines: frozenset[Discipline],
        constant_attendance: bool = False,
        supervised_modality: bool = False,
        evaluation: bool = False,
        reevaluation: bool = False,
        assistant_allowed: bool = True,
        group: bool = False,
        unlisted: bool = False,
        medicare_note: str = "",
        handling: str = "",
        mue: int | None = None,
    ) -> None:
        object.__setattr__(
            self,
            "__dict__",
            {
                "code": code,
                "kind": kind,
                "description": description,
                "disciplines": disciplines,
                "constant_attendance": constant_attendance,
                "supervised_modality": supervised_modality,
                "evaluation": evaluation,
                "reevaluation": reevaluation,
                "assistant_allowed": assistant_allowed,
                "group": group,
                "unlisted": unlisted,
                "medicare_note": medicare_note,
                "handling": handling,
                "mue": mue,
            },
        )

    @property
    def timed(self) -> bool:
        return self.kind is Kind.TIMED

    @property
    def own_discipline(self) -> Discipline | None:
        """The single discipline of a discipline-specific code (e.g. a PT evaluation), else None."""
        if len(self.disciplines) == 1:
            return next(iter(self.disciplines))
        return None


_BOOL_FLAGS = (
    "constant_attendance",
    "supervised_modality",
    "evaluation",
    "reevaluation",
    "assistant_allowed",
    "group",
    "unlisted",
)
_NOTES = ("medicare_note", "handling")
_CLINIC_KEYS = ("description", "mue")
"""What a clinic's file may set on a built-in code: its words and its payers' limit, never
what decides units, modifiers or which codes run together."""
_ENTRY_KEYS = ("code", "kind", "description", "disciplines", *_BOOL_FLAGS, *_NOTES, "mue")
_TOP_KEYS = ("code", "favourites")
_DISCIPLINES = frozenset(d.value for d in Discipline)
_KINDS = frozenset(k.value for k in Kind)
_LINE_BREAKS = frozenset("\u2028\u2029\x85")


def normalize_code(raw: str, field: str = "code") -> str:
    """Upper-case and strip a typed code, or raise InvalidInput naming ``field``."""
    if not isinstance(raw, str):
        raise InvalidInput(field, f"a billing code must be text, got {_describe(raw)}")
    code = raw.strip().upper()
    # String methods rather than CODE_PATTERN: this runs for every lookup of the billing engine.
    # isascii() first, because isdigit() also accepts other scripts' digits.
    if (
        len(code) == 5
        and code.isascii()
        and code[1:].isdigit()
        and (code[0].isdigit() or code[0].isalpha())
    ):
        return code
    raise InvalidInput(
        field, f"{_quote(raw)} is not a billing code (five digits, or a letter and four digits)"
    )


def _did_you_mean(word: str, choices: Sequence[str]) -> str:
    """A hint for a misspelt key, e.g. "did you mean 'assistant_allowed'? ", or ""."""
    import difflib  # only on the error path: it costs milliseconds at start-up

    close = difflib.get_close_matches(word, choices, n=1)
    return f"did you mean {close[0]!r}? " if close else ""


def _quote(text: str) -> str:
    """``text`` quoted for a message, at most about 80 characters of it."""
    if len(text) <= _QUOTE_LIMIT:
        return repr(text)
    return f"{text[:_QUOTE_LIMIT]!r}… ({len(text)} characters)"


def _describe(value: object) -> str:
    """A TOML value in plain words, e.g. 'the text "false"' or 'the number 5'."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        shown = str(value)
        return f"the number {shown if len(shown) <= _QUOTE_LIMIT else shown[:_QUOTE_LIMIT] + '…'}"
    if isinstance(value, str):
        return f"the text {_quote(value)}"
    if isinstance(value, list):
        return f"a list of {len(value)} item{'' if len(value) == 1 else 's'}"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, dt.date | dt.time):
        return f"the date or time {value.isoformat()}"
    return f"a {type(value).__name__}"


def _show(value: object) -> str:
    """A catalogue field's value as it would be written in codes.toml."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, frozenset):
        return "[" + ", ".join(f'"{d.value}"' for d in Discipline if d in value) + "]"
    if isinstance(value, StrEnum):
        return f'"{value.value}"'
    return _quote(str(value))


# A table header line: [name] or [[name]] with a plain or quoted dotted key (no commas, so the
# lines of a multi-line array of arrays are not mistaken for headers).
_HEADER = r"""^[ \t]*\[(\[?)[ \t]*([A-Za-z0-9_\-."' \t]+?)[ \t]*\]"""


class _Lines:
    """Finds the line of an entry or key by scanning the text (tomllib keeps no positions).

    Best effort: a multi-line string that looks like a header can mislead it, and then the
    message names a nearby line; it never changes whether a file is accepted.
    """

    def __init__(self, text: str) -> None:
        # Split on "\n" only: str.splitlines() also splits on characters TOML strings may hold.
        self._lines = text.split("\n")
        self._headers: list[tuple[int, bool, str]] = []  # (0-based index, [[array]]?, name)
        for index, line in enumerate(self._lines):
            match = re.match(_HEADER, line)
            if match:
                name = re.sub(r"""[\s"']""", "", match.group(2))
                self._headers.append((index, bool(match.group(1)), name))
        self._entries = [index for index, array, name in self._headers if array and name == "code"]

    def _key_at(self, index: int, key: str) -> bool:
        names = (re.escape(key), re.escape(f'"{key}"'), re.escape(f"'{key}'"))
        pattern = rf"^[ \t]*(?:{'|'.join(names)})[ \t]*[=.]"
        return re.match(pattern, self._lines[index]) is not None

    def top_key(self, key: str) -> int:
        """The 1-based line that opens the top-level ``key`` (a header or ``key = …``)."""
        for index, _, name in self._headers:
            if name == key or name.startswith(key + "."):
                return index + 1
        end = self._headers[0][0] if self._headers else len(self._lines)
        for index in range(end):
            if self._key_at(index, key):
                return index + 1
        return 1

    def code_entry(self, position: int) -> int:
        """The line of the ``position``-th (0-based) ``[[code]]`` entry."""
        if position < len(self._entries):
            return self._entries[position] + 1
        return self.top_key("code")  # written as an inline array: code = [{…}, …]

    def key_in(self, start: int, key: str, table: str = "code") -> int:
        """The line of ``key`` in the ``table`` whose header is on 1-based line ``start``."""
        following = [(index, name) for index, _, name in self._headers if index >= start]
        end = following[0][0] if following else len(self._lines)
        for index in range(start, end):
            if self._key_at(index, key):
                return index + 1
        for index, name in following:  # a sub-table: [code.key]
            if name == f"{table}.{key}":
                return index + 1
            if name == table:  # the next entry
                break
        return start


_Line = int | Callable[[], int]
"""A 1-based line number, or how to find it: lines are looked for only when a message needs one."""


class _Checker:
    """Checks one code file's parsed data, raising InvalidInput that names file, line and field."""

    def __init__(self, label: str, text: str) -> None:
        self.label = label
        self.lines = _Lines(text)

    def fail(self, line: _Line, what: str, message: str) -> NoReturn:
        number = line() if callable(line) else line
        raise InvalidInput(f"{self.label}, line {number}, {what}", message)

    def text(self, value: object, line: _Line, what: str, limit: int, *, required: bool) -> str:
        if not isinstance(value, str):
            self.fail(line, what, f"must be text in quotes, not {_describe(value)}")
        clean = value.strip()
        if required and not clean:
            self.fail(line, what, "must not be empty")
        if len(clean) > limit:
            self.fail(line, what, f"is {len(clean)} characters long; at most {limit} fit")
        for char in clean:
            if char in _LINE_BREAKS or unicodedata.category(char) == "Cc":
                self.fail(
                    line,
                    what,
                    f"must be one line of plain text; {_quote(clean)} holds the control "
                    f"character U+{ord(char):04X}",
                )
        return clean

    def flag(self, value: object, line: _Line, what: str) -> bool:
        if not isinstance(value, bool):
            self.fail(line, what, f"must be true or false (without quotes), not {_describe(value)}")
        return value

    def units(self, value: object, line: _Line, what: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            self.fail(
                line,
                what,
                "must be a positive whole number of units per date of service (without "
                f"quotes), like 4, not {_describe(value)}",
            )
        return value

    def kind(self, value: object, line: _Line, what: str) -> Kind:
        if not isinstance(value, str) or value not in _KINDS:
            self.fail(
                line, what, f'must be "timed", "untimed" or "special", not {_describe(value)}'
            )
        return Kind(value)

    def disciplines(self, value: object, line: _Line, what: str) -> frozenset[Discipline]:
        known = ", ".join(f'"{d.value}"' for d in Discipline)
        if not isinstance(value, list) or not value:
            self.fail(
                line,
                what,
                f'must be a list of one or more of {known}, like ["PT", "OT"]; '
                f"found {_describe(value)}",
            )
        chosen: list[Discipline] = []
        for item in value:
            if not isinstance(item, str) or item not in _DISCIPLINES:
                self.fail(line, what, f"may list only {known}, not {_describe(item)}")
            if Discipline(item) in chosen:
                self.fail(line, what, f"lists {item!r} twice")
            chosen.append(Discipline(item))
        return frozenset(chosen)

    def code(self, value: object, line: _Line, what: str) -> str:
        if not isinstance(value, str):
            self.fail(line, what, f'must be text in quotes, like "97110", not {_describe(value)}')
        try:
            return normalize_code(value, what)
        except InvalidInput as exc:
            self.fail(line, what, exc.message)

    def entry(self, raw: object, position: int, base: Catalogue | None) -> Code:
        line = self.lines.code_entry(position)
        where = f"code entry {position + 1}"
        if not isinstance(raw, dict):
            self.fail(line, where, f"must be a [[code]] table, not {_describe(raw)}")
        if "code" not in raw:
            self.fail(line, f"{where}, code", 'is missing (each [[code]] needs code = "…")')
        code = self.code(raw["code"], partial(self.lines.key_in, line, "code"), f"{where}, code")
        where = f"code {code}"
        for key in raw:
            if key not in _ENTRY_KEYS:
                hint = _did_you_mean(key, _ENTRY_KEYS)
                self.fail(
                    partial(self.lines.key_in, line, key),
                    f"{where}, {_quote(key)}",
                    f"is not a field of a code; {hint}the fields are {', '.join(_ENTRY_KEYS)}",
                )
        builtin = None if base is None else base.lookup(code)
        if builtin is None:
            for key in ("kind", "description", "disciplines"):
                if key not in raw:
                    self.fail(
                        line,
                        f"{where}, {key}",
                        "is missing (a new code needs kind, description and disciplines)",
                    )
        values: dict[str, Any] = {}
        for key, value in raw.items():
            at = partial(self.lines.key_in, line, key)
            what = f"{where}, {key}"
            if key == "kind":
                values[key] = self.kind(value, at, what)
            elif key == "description":
                values[key] = self.text(value, at, what, MAX_DESCRIPTION, required=True)
            elif key == "disciplines":
                values[key] = self.disciplines(value, at, what)
            elif key in _NOTES:
                values[key] = self.text(value, at, what, MAX_NOTE, required=False)
            elif key in _BOOL_FLAGS:
                values[key] = self.flag(value, at, what)
            elif key == "mue":
                values[key] = self.units(value, at, what)
        if builtin is not None:
            return self._builtin_entry(builtin, values, line)
        new = Code(code=code, **values)
        self._coherent(new, line)
        return new

    def _builtin_entry(self, builtin: Code, values: Mapping[str, Any], line: int) -> Code:
        # Kind, disciplines and flags decide units, modifiers and which codes may run together:
        # a clinic file that turned 97110 into a supervised modality could bill it beside 97140.
        for key, value in values.items():
            if key not in _CLINIC_KEYS and value != getattr(builtin, key):
                self.fail(
                    self.lines.key_in(line, key),
                    f"code {builtin.code}, {key}",
                    f"{builtin.code} is a built-in code, so its {key} stays "
                    f"{_show(getattr(builtin, key))} and cannot be set to {_show(value)}; "
                    "a clinic file may set only a built-in code's description and mue "
                    "(and the [favourites])",
                )
        changed = {k: v for k, v in values.items() if v != getattr(builtin, k)}
        return replace(builtin, **changed) if changed else builtin

    def _coherent(self, code: Code, line: int) -> None:
        """Flags that contradict the kind would mis-bill (billing-rules.md §5, §8)."""
        problems = (
            (
                "supervised_modality",
                code.supervised_modality and code.kind is not Kind.UNTIMED,
                "a supervised modality is an untimed code (§5.2)",
            ),
            (
                "constant_attendance",
                code.constant_attendance and code.kind is not Kind.TIMED,
                "a constant-attendance modality is a timed code (§5.1)",
            ),
            (
                "group",
                code.group and code.kind is not Kind.UNTIMED,
                "a group code is one unit per patient, an untimed code (§5.2)",
            ),
            (
                "evaluation",
                code.evaluation and code.kind is Kind.TIMED,
                "an evaluation is not a 15-minute timed code (§5.2, §5.3)",
            ),
            (
                "reevaluation",
                code.reevaluation and not code.evaluation,
                "a re-evaluation is an evaluation too: add evaluation = true",
            ),
        )
        for key, wrong, why in problems:
            if wrong:
                self.fail(
                    self.lines.key_in(line, key),
                    f"code {code.code}, {key}",
                    f"cannot be true for {'an' if code.kind is Kind.UNTIMED else 'a'} "
                    f"{code.kind.value} code: {why}",
                )

    def favourites(self, raw: object, catalogue: Catalogue) -> dict[Discipline, tuple[str, ...]]:
        line = self.lines.top_key("favourites")
        if not isinstance(raw, dict):
            self.fail(
                line,
                "favourites",
                "must be a [favourites] table with one list per discipline, like "
                f'PT = ["97110", "97140"]; found {_describe(raw)}',
            )
        lists: dict[Discipline, tuple[str, ...]] = {}
        for key, value in raw.items():
            at = partial(self.lines.key_in, line, key, "favourites")
            if key not in _DISCIPLINES:
                self.fail(
                    at, f"favourites, {_quote(key)}", "is not a discipline; use PT, OT or SLP"
                )
            what = f"favourites, {key}"
            discipline = Discipline(key)
            if not isinstance(value, list) or not value:
                self.fail(
                    at,
                    what,
                    'must be a list of one or more codes in quotes, like ["97110", "97140"]; '
                    f"found {_describe(value)}",
                )
            if len(value) > MAX_FAVOURITES:
                self.fail(at, what, f"lists {len(value)} codes; at most {MAX_FAVOURITES} fit")
            chosen: list[str] = []
            for item in value:
                code = self.code(item, at, what)
                entry = catalogue.lookup(code)
                if code in chosen:
                    self.fail(at, what, f"lists {code} twice")
                if entry is None:
                    self.fail(
                        at, what, f"lists {code}, which is not in the catalogue; add a [[code]]"
                    )
                if discipline not in entry.disciplines:
                    self.fail(
                        at,
                        what,
                        f"lists {code}, which is not for {discipline} "
                        f"(its disciplines are {_show(entry.disciplines)})",
                    )
                chosen.append(code)
            lists[discipline] = tuple(chosen)
        return lists

    def catalogue(self, data: Mapping[str, Any], base: Catalogue | None) -> Catalogue:
        for key in data:
            if key not in _TOP_KEYS:
                self.fail(
                    self.lines.top_key(key),
                    _quote(key),
                    f"is not part of a code file; {_did_you_mean(key, _TOP_KEYS)}a code file "
                    "holds [[code]] entries and one [favourites] table",
                )
        entries = data.get("code", [])
        if isinstance(entries, dict):
            self.fail(
                self.lines.top_key("code"),
                "code",
                "write each code as [[code]] with two pairs of brackets, not [code]",
            )
        if not isinstance(entries, list):
            self.fail(
                self.lines.top_key("code"),
                "code",
                f"must be [[code]] entries, not {_describe(entries)}",
            )
        if len(entries) > MAX_CODES:
            self.fail(1, "code", f"has {len(entries)} entries; at most {MAX_CODES} fit")
        seen: dict[str, int] = {}
        codes: list[Code] = []
        for position, raw in enumerate(entries):
            entry = self.entry(raw, position, base)
            line = self.lines.code_entry(position)
            if entry.code in seen:
                self.fail(
                    line,
                    f"code {entry.code}",
                    f"is listed twice in this file (first on line {seen[entry.code]})",
                )
            seen[entry.code] = line
            codes.append(entry)
        catalogue = Catalogue(tuple(codes)) if base is None else base.extended(codes)
        if "favourites" in data:
            catalogue = catalogue.extended((), self.favourites(data["favourites"], catalogue))
        return catalogue


_TOML_POSITION = r"\s*\(at line (\d+), column (\d+)\)$"


def _read_code_file(path: FilePath) -> bytes | None:
    """The file's bytes, or None when there is none; refuses all but a small regular file."""
    label = str(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise InvalidInput(label, "is a link to a file that does not exist") from None
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InvalidInput(label, "is a symbolic link that loops back on itself") from None
        raise InvalidInput(label, f"cannot be read ({exc.strerror or exc})") from None
    _check_file_kind(label, info)
    try:
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
        descriptor = os.open(path, flags)  # non-blocking: a FIFO swapped in cannot hang us
    except OSError as exc:
        raise InvalidInput(label, f"cannot be read ({exc.strerror or exc})") from None
    try:
        _check_file_kind(label, os.fstat(descriptor))  # the file we opened, not the one we saw
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_FILE_BYTES:
            chunk = os.read(descriptor, MAX_FILE_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise InvalidInput(label, f"cannot be read ({exc.strerror or exc})") from None
    finally:
        os.close(descriptor)
    if size > MAX_FILE_BYTES:
        raise InvalidInput(label, f"is larger than {MAX_FILE_BYTES // 1024} KiB; not a code file")
    return b"".join(chunks)


def _check_file_kind(label: str, info: os.stat_result) -> None:
    if stat.S_ISDIR(info.st_mode):
        raise InvalidInput(label, "is a folder, not a code file")
    if not stat.S_ISREG(info.st_mode):
        raise InvalidInput(label, "is not a regular file (a pipe, socket or device?)")
    if info.st_size > MAX_FILE_BYTES:
        raise InvalidInput(
            label, f"is {info.st_size} bytes, larger than {MAX_FILE_BYTES // 1024} KiB"
        )


def _decode(label: str, data: bytes) -> str:
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise InvalidInput(label, "is UTF-16 text, not UTF-8 text: save it as UTF-8")
    data = data.removeprefix(codecs.BOM_UTF8)  # Windows Notepad used to write one
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InvalidInput(
            f"{label}, line {line}",
            f"is not UTF-8 text (byte 0x{data[exc.start]:02X}): save it as UTF-8",
        ) from None
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise InvalidInput(
            f"{label}, line {line}",
            "is not UTF-8 text (it holds NUL bytes; UTF-16?): save it as UTF-8",
        )
    return text


def _parse(label: str, data: bytes, base: Catalogue | None) -> Catalogue:
    """A catalogue from a code file's bytes: ``base`` plus the file, or the file alone."""
    import tomllib  # here, not at the top: the built-in catalogue is read precompiled

    text = _decode(label, data)
    try:
        parsed = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        reason = str(exc)
        # Python 3.11's TOMLDecodeError has no lineno attribute (3.14 adds it): read the text.
        position = re.search(_TOML_POSITION, reason)
        line = int(position.group(1)) if position else text.count("\n") + 1
        reason = re.sub(_TOML_POSITION, "", reason).removesuffix(" (at end of document)")
        column = f" at column {position.group(2)}" if position else " at the end"
        raise InvalidInput(
            f"{label}, line {line}", f"not a valid code file (TOML): {reason}{column}"
        ) from None
    except ValueError:  # an integer past Python's 4300-digit limit (sys.int_info)
        raise InvalidInput(label, "not a valid code file (TOML): a number is too long") from None
    except RecursionError:
        raise InvalidInput(label, "not a valid code file (TOML): nested too deeply") from None
    return _Checker(label, text).catalogue(parsed, base)


@frozen_record
class Catalogue:
    """An ordered, read-only set of codes; the order is the last tie-break of R2.8.

    ``favourite_lists`` holds, per discipline, the codes a new clinician's screen starts with.
    """

    codes: tuple[Code, ...]
    favourite_lists: Mapping[Discipline, tuple[str, ...]] = field(default_factory=dict, hash=False)
    _by_code: dict[str, Code] = field(init=False, repr=False, compare=False)
    _rank: dict[str, int] = field(init=False, repr=False, compare=False)
    mues: bool = field(init=False, repr=False, compare=False)
    """Some code has a MUE (R9.4): a patient's claim days of a date are then held to it
    together (``billing.claim_days``)."""

    def __init__(
        self,
        codes: tuple[Code, ...],
        favourite_lists: Mapping[Discipline, tuple[str, ...]] | None = None,
    ) -> None:
        object.__setattr__(self, "codes", codes)
        object.__setattr__(
            self, "favourite_lists", {} if favourite_lists is None else favourite_lists
        )
        self.__post_init__()

    def __post_init__(self) -> None:
        by_code: dict[str, Code] = {}
        for entry in self.codes:
            if entry.code in by_code:
                raise InvalidInput(f"code {entry.code}", "listed twice in the catalogue")
            by_code[entry.code] = entry
        object.__setattr__(self, "_by_code", by_code)
        object.__setattr__(self, "_rank", {c.code: i for i, c in enumerate(self.codes)})
        object.__setattr__(self, "mues", any(c.mue is not None for c in self.codes))
        lists: dict[Discipline, tuple[str, ...]] = {}
        for name, codes in self.favourite_lists.items():
            if name not in _DISCIPLINES:
                raise InvalidInput("favourites", f"{name!r} is not a discipline")
            discipline = Discipline(name)
            chosen = tuple(codes)
            for code in chosen:
                found = by_code.get(code)
                if found is None or discipline not in found.disciplines:
                    raise InvalidInput(
                        f"favourites {discipline}",
                        f"{code!r} is not a code for {discipline} in this catalogue",
                    )
            if len(set(chosen)) != len(chosen):
                raise InvalidInput(f"favourites {discipline}", "lists a code twice")
            lists[discipline] = chosen
        object.__setattr__(self, "favourite_lists", MappingProxyType(lists))

    @classmethod
    def from_toml(cls, path: Path) -> Catalogue:
        """A catalogue of exactly the codes in ``path``, checked as strictly as a clinic's file."""
        data = _read_code_file(path)
        if data is None:
            raise InvalidInput(str(path), "does not exist")
        return _parse(str(path), data, None)

    def extended(
        self,
        extra: Iterable[Code],
        favourites: Mapping[Discipline, Sequence[str]] | None = None,
    ) -> Catalogue:
        """A catalogue with a clinic's own codes added and its favourites set.

        A clinic entry replaces a built-in one in place, so the order (R2.8's last tie-break)
        stays; new codes go at the end. A discipline's favourites replace that discipline's list.
        """
        extra = tuple(extra)
        replacing = {c.code: c for c in extra if c.code in self._by_code}
        codes = tuple(replacing.get(c.code, c) for c in self.codes)
        codes += tuple(c for c in extra if c.code not in replacing)
        lists: dict[Discipline, tuple[str, ...]] = dict(self.favourite_lists)
        lists.update((Discipline(d), tuple(c)) for d, c in (favourites or {}).items())
        return Catalogue(codes, lists)

    def favourites(self, discipline: Discipline) -> tuple[str, ...]:
        """The codes a clinician of ``discipline`` starts with on screen, in order."""
        return self.favourite_lists.get(discipline, ())

    def lookup(self, code: str) -> Code | None:
        """The entry for an exact, already normalised code, or None."""
        return self._by_code.get(code)

    def get(self, raw: str, field: str = "code") -> Code:
        """The code for ``raw``; a malformed or unknown code raises an error naming ``field``."""
        if isinstance(raw, str):
            entry = self._by_code.get(raw)  # the common case: already normalised
            if entry is not None:
                return entry
        code = normalize_code(raw, field)
        try:
            return self._by_code[code]
        except KeyError:
            raise UnknownCode(field, code) from None

    def __contains__(self, code: object) -> bool:
        return isinstance(code, str) and (
            code in self._by_code or code.strip().upper() in self._by_code
        )

    def __iter__(self) -> Iterator[Code]:
        return iter(self.codes)

    def __len__(self) -> int:
        return len(self.codes)

    def rank(self, code: str) -> int:
        """Position in the catalogue (the deterministic last tie-break)."""
        return self._rank[code]

    def search(self, text: str) -> list[Code]:
        """Codes whose number or description contains ``text`` (case-insensitive)."""
        needle = text.strip().casefold()
        return [
            c
            for c in self.codes
            if needle in c.code.casefold() or needle in c.description.casefold()
        ]


CLINIC_CODES_FILE = "codes.toml"


BUILTIN_CODES_FILE = "codes.toml"
PRECOMPILED_CODES_FILE = "codes.precompiled.json"
"""resources/codes.toml's checked catalogue with the text it was made from
(packaging/precompile_codes.py); tests/test_startup_units.py fails when it is out of date."""


@functools.cache
def builtin_catalogue() -> Catalogue:
    """The catalogue shipped in resources/codes.toml, read once, on first use."""
    return load_builtin(resource_file(BUILTIN_CODES_FILE), resource_file(PRECOMPILED_CODES_FILE))


def load_builtin(toml: FilePath, precompiled: FilePath) -> Catalogue:
    """The catalogue of the code file ``toml``, from ``precompiled`` when that was made from
    exactly the file's text, else parsed and checked from the file itself.

    Parsing the TOML was most of a ``units`` command's start-up after its imports (issue 13);
    reading the stored catalogue takes a fraction of it. A stored catalogue made from any other
    text, or one that cannot be read, is never used.
    """
    data = _read_code_file(toml)
    if data is None:
        raise InvalidInput(str(toml), "does not exist")
    stored = _stored_catalogue(precompiled, data)
    return stored if stored is not None else _parse(str(toml), data, None)


def precompiled_form(catalogue: Catalogue, data: bytes) -> str:
    """The text of a stored catalogue for the code file whose bytes are ``data``."""
    codes = []
    for entry in catalogue:
        fields = {
            name: getattr(entry, name)
            for name in (*_BOOL_FLAGS, *_NOTES, "mue")
            if getattr(entry, name) != getattr(_DEFAULTS, name)
        }
        disciplines = [d.value for d in Discipline if d in entry.disciplines]
        codes.append([entry.code, entry.kind.value, entry.description, disciplines, fields])
    favourites = {d.value: list(c) for d, c in catalogue.favourite_lists.items()}
    source = data.decode("utf-8")
    return json.dumps({"source": source, "codes": codes, "favourites": favourites}, indent=1)


_DEFAULTS = Code("00000", Kind.TIMED, "", frozenset())


def _stored_catalogue(path: FilePath, data: bytes) -> Catalogue | None:
    try:
        with open(path, "rb") as file:
            stored = json.loads(file.read())
        if stored["source"] != data.decode("utf-8"):
            return None
        codes = tuple(
            Code(code, Kind(kind), description, frozenset(map(Discipline, disciplines)), **fields)
            for code, kind, description, disciplines, fields in stored["codes"]
        )
        return Catalogue(codes, stored["favourites"])
    except (OSError, ValueError, KeyError, TypeError):
        return None  # missing or unreadable (e.g. a hand-made bundle): parse the file instead


def load_catalogue(clinic_file: FilePath | None = None) -> Catalogue:
    """The built-in catalogue, extended with a clinic's own code file when it exists.

    Every problem with the clinic's file raises InvalidInput whose field names the file, the
    line and the field. A built-in code keeps its kind, disciplines, flags and notes: the file
    may change only its description and set its MUE (R9.4), and the favourites.
    """
    builtin = builtin_catalogue()
    if clinic_file is None:
        return builtin
    data = _read_code_file(clinic_file)
    if data is None:
        return builtin
    return _parse(str(clinic_file), data, builtin)
