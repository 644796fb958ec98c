"""The billing-code catalogue: which codes exist, timed or not, for which discipline (data only)."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from therapy_timer.errors import InvalidInput, UnknownCode
from therapy_timer.paths import resource_path

CODE_PATTERN = re.compile(r"^(?:\d{5}|[A-Z]\d{4})$")
"""CPT codes are five digits; HCPCS level II codes are a letter and four digits (e.g. G0283)."""


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
    def discipline(self) -> Discipline:
        return {
            "PT": Discipline.PT,
            "PTA": Discipline.PT,
            "OT": Discipline.OT,
            "OTA": Discipline.OT,
            "SLP": Discipline.SLP,
        }[self.value]


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


@dataclass(frozen=True)
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


def normalize_code(raw: str, field: str = "code") -> str:
    """Upper-case and strip a typed code, or raise InvalidInput naming ``field``."""
    if not isinstance(raw, str):
        raise InvalidInput(field, f"a billing code must be text, got {raw!r}")
    code = raw.strip().upper()
    if not CODE_PATTERN.match(code):
        raise InvalidInput(
            field, f"{raw!r} is not a billing code (five digits, or a letter and four digits)"
        )
    return code


def _code_from_table(entry: Mapping[str, Any], where: str) -> Code:
    try:
        code = normalize_code(entry["code"], f"{where}.code")
        kind = Kind(entry["kind"])
        disciplines = frozenset(Discipline(d) for d in entry["disciplines"])
        flags = {name: bool(entry[name]) for name in _BOOL_FLAGS if name in entry}
        return Code(
            code=code,
            kind=kind,
            description=str(entry["description"]),
            disciplines=disciplines,
            medicare_note=str(entry.get("medicare_note", "")),
            handling=str(entry.get("handling", "")),
            **flags,
        )
    except KeyError as exc:
        raise InvalidInput(where, f"missing {exc.args[0]!r}") from None
    except ValueError as exc:
        if isinstance(exc, InvalidInput):
            raise
        raise InvalidInput(where, str(exc)) from None


@dataclass(frozen=True)
class Catalogue:
    """An ordered, read-only set of codes; the order is the last tie-break of R2.8."""

    codes: tuple[Code, ...]
    _by_code: dict[str, Code] = field(init=False, repr=False, compare=False)
    _rank: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_code: dict[str, Code] = {}
        for entry in self.codes:
            if entry.code in by_code:
                raise InvalidInput(f"code {entry.code}", "listed twice in the catalogue")
            by_code[entry.code] = entry
        object.__setattr__(self, "_by_code", by_code)
        object.__setattr__(self, "_rank", {c.code: i for i, c in enumerate(self.codes)})

    @classmethod
    def from_toml(cls, path: Path) -> Catalogue:
        with path.open("rb") as handle:
            try:
                data = tomllib.load(handle)
            except tomllib.TOMLDecodeError as exc:
                raise InvalidInput(str(path), f"not a valid code file: {exc}") from None
        entries = data.get("code", [])
        return cls(tuple(_code_from_table(e, f"{path.name}[{i}]") for i, e in enumerate(entries)))

    def extended(self, extra: Iterable[Code]) -> Catalogue:
        """A catalogue with a clinic's own codes added; a clinic entry replaces a built-in one."""
        extra = tuple(extra)
        replaced = {c.code for c in extra}
        return Catalogue(tuple(c for c in self.codes if c.code not in replaced) + extra)

    def get(self, raw: str, field: str = "code") -> Code:
        """The code for ``raw``; a malformed or unknown code raises an error naming ``field``."""
        code = normalize_code(raw, field)
        try:
            return self._by_code[code]
        except KeyError:
            raise UnknownCode(field, code) from None

    def __contains__(self, code: object) -> bool:
        return isinstance(code, str) and code.strip().upper() in self._by_code

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


def builtin_catalogue() -> Catalogue:
    return _BUILTIN


def load_catalogue(clinic_file: Path | None = None) -> Catalogue:
    """The built-in catalogue, extended with a clinic's own code file when it exists."""
    if clinic_file is None or not clinic_file.exists():
        return _BUILTIN
    return _BUILTIN.extended(Catalogue.from_toml(clinic_file).codes)


_BUILTIN = Catalogue.from_toml(resource_path("codes.toml"))
