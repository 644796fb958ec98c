"""The ``therapy-timer`` command: thin click commands over the library modules."""

from __future__ import annotations

import atexit
import datetime as dt
import functools
import gc
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any, NoReturn, ParamSpec, TypeVar

import click

from therapy_timer import __version__, paths
from therapy_timer.clock import Clock, SystemClock
from therapy_timer.codes import Catalogue, Discipline, FurnishedBy, Method, Role
from therapy_timer.errors import (
    DatabaseCorrupt,
    InvalidInput,
    InvalidOperation,
    OutputRefused,
    StorageUnavailable,
    TherapyTimerError,
    UnknownCode,
)
from therapy_timer.explain import PAYER_PROFILE_HELP

# Start-up (issue 13): `units` and `--version` must start about as fast as click itself, so the
# clinic, the store, export and the records load only inside the commands that use them, and
# the rules and the units contract (a third of `--version`'s imports) only where answers are made.
if TYPE_CHECKING:
    from pathlib import Path

    from therapy_timer.clinic import Clinic, Header, Outcome, PdfRenderer
    from therapy_timer.model import Conflict, PayerProfile, Session, SessionProblem
    from therapy_timer.rules import Result


def _hostname() -> str:
    """This workstation's name; socket is imported only by the command that asks."""
    import socket

    return socket.gethostname()


EXPORT_FORMATS = ("csv", "pdf", "json", "bundle")
"""export.EXPORT_FORMATS, for --format without importing export (tests/test_startup.py checks)."""

BAD_INPUT_STATUS = 2


class BadInput(click.ClickException):
    """Bad input from the user or another program: exit status 2, one plain line on stderr."""

    exit_code = BAD_INPUT_STATUS


class Context:
    """What every subcommand shares: where the data lives, and the clock."""

    def __init__(self, data_dir: Path | str | None, clock: Clock | None = None) -> None:
        # As text: pathlib is not needed to answer `units` (see paths.data_folder).
        self.data_folder = paths.data_folder(data_dir)
        self.clock: Clock = clock or SystemClock()
        self.backup_failed = False

    @property
    def data_dir(self) -> Path:
        from pathlib import Path

        return Path(self.data_folder)

    @contextmanager
    def clinic(self) -> Iterator[Clinic]:
        """The same database the window uses, opened for one command and closed after it.

        The first command of the day makes the daily backup (a station may run without the
        window, driven by a foot pedal) after the command's own work, so that the moment of a
        pedal press is what is recorded; a damaged database is reported in plain words. A
        backup that cannot be made (a full disk) is said on stderr and the command ends with
        status 1 after its answer (``_after_command``): most commands print once the database is
        closed, and the answer was lost to the error.
        """
        from therapy_timer.clinic import Clinic

        with Clinic.open(self.data_dir, clock=self.clock, catalogue=self.catalogue()) as clinic:
            yield clinic
            try:
                clinic.daily_backup()
            except DatabaseCorrupt:
                raise
            except StorageUnavailable as exc:
                click.echo(f"Error: {exc}", err=True)
                self.backup_failed = True

    def catalogue(self) -> Catalogue:
        # codes.load_catalogue, as clinic.load_catalogue does, without importing the clinic.
        from therapy_timer.codes import CLINIC_CODES_FILE, load_catalogue

        try:
            return load_catalogue(os.path.join(self.data_folder, CLINIC_CODES_FILE))
        except InvalidInput as exc:
            raise BadInput(f"clinic code file: {exc}") from None


pass_context = click.make_pass_decorator(Context)


class _PathType(click.Path):
    """``click.Path(path_type=pathlib.Path)``, loading pathlib only when a command is given a
    path: commands that take none (``units``, ``--version``) start without it (issue 13)."""

    def convert(
        self,
        value: str | os.PathLike[str],
        param: click.Parameter | None,
        ctx: click.Context | None,
    ) -> Path:
        from pathlib import Path

        return Path(os.fsdecode(super().convert(value, param, ctx)))


class _DataFolder(click.Path):
    """``click.Path(file_okay=False)`` that also refuses an empty name: "" would be the folder
    the command runs in, and a clinic's data must never land wherever that happens to be."""

    def __init__(self) -> None:
        super().__init__(file_okay=False)

    def convert(
        self,
        value: str | os.PathLike[str],
        param: click.Parameter | None,
        ctx: click.Context | None,
    ) -> str | bytes | os.PathLike[str]:
        if value == "":
            self.fail("it is empty; give the data folder's path", param, ctx)
        if isinstance(value, str) and not value.isascii():
            # From THERAPY_TIMER_DATA_DIR (the option's words are checked as they are parsed):
            # a name that is not UTF-8 made the folder, then a traceback from the store's path.
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                self.fail(
                    "it is not UTF-8 text; type it again (or set the terminal to UTF-8)", param, ctx
                )
        return super().convert(value, param, ctx)


class _TextOnly(click.Group):
    """The command line: every word must be text before any command sees it."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        for n, word in enumerate(args):
            _require_text(word, args[n - 1] if n else "")
        return super().parse_args(ctx, args)


def _require_text(word: str, before: str) -> None:
    """BadInput naming the option (or position) of a word holding bytes that are not UTF-8.

    Python passes such bytes on as lone surrogates (PEP 383); SQLite, the audit log and the
    terminal cannot encode them, and deep inside a command they surface as a traceback.
    """
    try:
        word.encode("utf-8")
    except UnicodeEncodeError:
        from therapy_timer.rules import quote

        option, _, _ = word.partition("=")
        if word.startswith("--") and "=" in word:
            name = option
        elif before.startswith("-") and "=" not in before:
            name = before
        else:
            name = "a word"
        readable = word.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        raise BadInput(
            f"{name}: {quote(readable)} is not UTF-8 text; type it again (or set the"
            " terminal to UTF-8)"
        ) from None


@click.group(
    cls=_TextOnly,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, prog_name="therapy-timer")
@click.option(
    "--data-dir",
    type=_DataFolder(),
    envvar=paths.DATA_DIR_ENV,
    help=f"Folder for the database and clinic files (default: per-user data folder; "
    f"env {paths.DATA_DIR_ENV}).",
)
@click.option(
    "--smoke-test",
    is_flag=True,
    help='Build the window, wait for its first paint, print {"painted_at": T, "ready_ms": N}'
    " and exit.",
)
@click.pass_context
def main(ctx: click.Context, data_dir: str | None, smoke_test: bool) -> None:
    """Per-code treatment stopwatches and billing-correct units for PT, OT and SLP.

    With no command, opens the window.
    """
    if ctx.obj is None:  # tests hand in a Context with a fake clock
        ctx.obj = Context(data_dir)
    if ctx.invoked_subcommand is None:
        # Imported here so that the command-line jobs never load Qt.
        from therapy_timer.gui.launch import run

        ctx.exit(run(ctx.obj.data_dir, smoke_test=smoke_test))


def _whole_number(text: str) -> int | None:
    """``text`` as a number when it is written with the digits 0-9 alone (a leading minus is
    kept for the range check to name); None otherwise.

    int() also reads other scripts' digits ('\u0665' is 5), '1_0' and ' +5 ': a typo or a pasted
    character must never become minutes that nobody typed.
    """
    digits = text[1:] if text.startswith("-") else text
    if not (digits.isascii() and digits.isdigit()):
        return None
    try:
        return int(text)
    except ValueError:  # over int()'s 4,300-digit limit
        return None


class _WholeNumber(click.ParamType[int]):
    """``type=int`` for the options a person types minutes into, reading the digits 0-9 only
    (see ``_whole_number``)."""

    name = "integer"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        number = _whole_number(value) if isinstance(value, str) else None
        if number is None:
            from therapy_timer.rules import quote

            self.fail(
                f"{quote(value)} is not a whole number written with the digits 0-9", param, ctx
            )
        return number


WHOLE_NUMBER = _WholeNumber()


class _DigitsDateTime(click.DateTime):
    """``click.DateTime`` reading the digits 0-9 only: strptime's pattern takes any script's
    digits in some places (an Arabic-Indic year was read as 2026, '1\u0664:10' as 14:10)."""

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> dt.datetime:
        if isinstance(value, str) and not value.isascii():
            from therapy_timer.rules import quote

            formats = " or ".join(f"'{f}'" for f in self.formats)
            self.fail(f"{quote(value)} is not written with the digits 0-9 as {formats}", param, ctx)
        return super().convert(value, param, ctx)


@main.result_callback()
def _after_command(*_: object, **__: object) -> None:
    """Status 1 for a command whose daily backup failed, once its answer is out."""
    context = click.get_current_context()
    found = context.find_object(Context)
    if found is not None and found.backup_failed:
        context.exit(1)


def _code_minutes(
    pairs: tuple[str, ...], option: str, minutes_optional: bool = False
) -> dict[str, Any]:
    """Parse CODE=MINUTES words; the rules module names what is wrong with a code or a number.

    A code given twice is refused, never last-wins ("Records that cannot be lost", item 13).
    """
    from therapy_timer.rules import key_text, quote

    parsed: dict[str, Any] = {}
    given: dict[str, str] = {}
    for pair in pairs:
        code, sep, minutes = pair.partition("=")
        same = code.strip().upper()
        if same in given:
            raise BadInput(
                f"{option} {key_text(code)}: given twice ({quote(given[same])} and "
                f"{quote(pair)}); give each code once"
            )
        given[same] = pair
        if not sep and minutes_optional:
            parsed[code] = None
            continue
        if not sep or not code:
            raise BadInput(f"{option}: expected CODE=MINUTES, got {quote(pair)}")
        number = _whole_number(minutes)
        if number is None:
            raise BadInput(
                f"{option} {key_text(code)}: minutes must be a whole number, got {quote(minutes)}"
            )
        parsed[code] = number
    return parsed


def _codes_alone(codes: tuple[str, ...], option: str) -> list[str]:
    """Codes without minutes; the rules name an unknown code and one given twice."""
    from therapy_timer.rules import quote

    for code in codes:
        if "=" in code:
            raise BadInput(
                f"{option}: expected a code alone, got {quote(code)}; an assistant's recorded"
                " minutes go with --assistant CODE=MINUTES"
            )
    return list(codes)


def _fail(exc: TherapyTimerError) -> NoReturn:
    raise BadInput(str(exc)) from None


P = ParamSpec("P")
R = TypeVar("R")


def plain_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Library errors become one readable line: bad input exits 2, anything else 1."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except InvalidInput as exc:
            raise BadInput(plain_message(exc)) from None
        except OutputRefused as exc:
            raise BadInput(str(exc)) from None
        except (InvalidOperation, StorageUnavailable) as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


FIELD_WORDS = {
    "patient_ref": "",  # its messages already say "patient reference"
    "payer_profile": "payer",
    "start_utc": "start time",
    "stop_utc": "end time",
    "closed_utc": "closing time",
    "date_of_service": "date of service",
    "untimed": "untimed service",
    "to": "--to",
    "out": "--out",
    "rounding_policy": "rounding setting",
}
"""The words a person uses for the store's field names (the store's names never reach them)."""


def plain_message(exc: InvalidInput) -> str:
    """The message of a refusal with the field said in the user's words.

    A store field's underscores become spaces ("start_utc" is "start utc"); the file the
    field starts with (``InvalidInput.source``) keeps its own ("my_room_2.json" was said as
    "my room 2.json", no file of theirs), whatever is on the disk when it is said.
    """
    field = exc.field
    words = FIELD_WORDS.get(field)
    if words is None:
        source = exc.source if field.startswith(exc.source) else ""
        words = source + " ".join(map(_store_words, field[len(source) :].split(" ")))
    return f"{words}: {exc.message}" if words else exc.message


def _store_words(word: str) -> str:
    return word.replace("_", " ") if word.isidentifier() else word


def _print_result(result: Result) -> None:
    from therapy_timer.rules import billed_code

    click.echo("Lines:")
    if not result.lines:
        click.echo("  (nothing billable)")
    for line in result.lines:
        click.echo(f"  {billed_code(line.code, line.modifiers):<16} {line.units} unit(s)")
    if result.alternatives:
        click.echo("Equally valid allocations of the timed units (R2.8):")
        for alternative in result.alternatives:
            click.echo("  " + ", ".join(f"{c} x {u}" for c, u in alternative.items()))
    if result.warnings:
        click.echo("Warnings:")
        for warning in result.warnings:
            click.echo(f"  [{warning.rule}] {warning.gist} ({warning.severity}). {warning.message}")
    click.echo("Note:")
    click.echo(result.note, nl=False)


@main.command()
@click.argument("timed", nargs=-1, metavar="CODE=MINUTES...")
@click.option(
    "--request", "request_file", type=click.File("rb"), help="JSON request file ('-' for stdin)."
)
@click.option("--json", "as_json", is_flag=True, help="Answer in the JSON contract.")
@click.option(
    "--method",
    type=click.Choice([m.value for m in Method], case_sensitive=False),
    default="cms",
    show_default=True,
)
@click.option(
    "--discipline",
    type=click.Choice([d.value for d in Discipline], case_sensitive=False),
    default="PT",
    show_default=True,
)
@click.option("--date", "date_of_service", help="Date of service, YYYY-MM-DD.")
@click.option(
    "--assistant",
    multiple=True,
    metavar="CODE=MINUTES",
    help="Minutes a PTA/OTA furnished separately.",
)
@click.option(
    "--untimed",
    multiple=True,
    metavar="CODE[=MINUTES]",
    help="An untimed service, with optional minutes.",
)
@click.option(
    "--assistant-untimed",
    multiple=True,
    metavar="CODE",
    help="An --untimed service a PTA/OTA furnished, in whole or in part, with no minutes"
    " recorded for their part (CQ/CO, R7.4).",
)
@click.option(
    "--no-assistant-modifiers", is_flag=True, help="The payer does not use CQ/CO (R7.10)."
)
@pass_context
def units(
    context: Context,
    timed: tuple[str, ...],
    request_file: Any,
    as_json: bool,
    method: str,
    discipline: str,
    date_of_service: str | None,
    assistant: tuple[str, ...],
    untimed: tuple[str, ...],
    assistant_untimed: tuple[str, ...],
    no_assistant_modifiers: bool,
) -> None:
    """Turn minutes per code into units, modifiers, warnings and a note.

    \b
    therapy-timer units 97110=33 97140=7 --untimed 97161 --method cms --discipline PT
    therapy-timer units --request FILE --json      (FILE: one request or an array; '-' = stdin)
    """
    from therapy_timer.contract import answer_json, request_from_json
    from therapy_timer.rules import evaluate

    catalogue = context.catalogue()
    if request_file is not None:
        if timed or assistant or untimed or assistant_untimed:
            raise BadInput("--request: give either a request file or codes on the command line")
        _answer_file(request_file, catalogue, as_json)
        return
    untimed_minutes = _code_minutes(untimed, "--untimed", minutes_optional=True)
    data: dict[str, Any] = {
        "method": method,
        "discipline": discipline,
        "timed": _code_minutes(timed, "CODE=MINUTES"),
        "assistant_minutes": _code_minutes(assistant, "--assistant"),
        "untimed": list(untimed_minutes),
        "untimed_minutes": {c: m for c, m in untimed_minutes.items() if m is not None},
        "assistant_modifiers": not no_assistant_modifiers,
    }
    if assistant_untimed:
        data["assistant_untimed"] = _codes_alone(assistant_untimed, "--assistant-untimed")
    if date_of_service is not None:  # "" (an unset shell variable) is refused, not no date
        data["date_of_service"] = date_of_service
    try:
        if as_json:
            click.echo(json.dumps(answer_json(data, catalogue), indent=2))
        else:
            _print_result(evaluate(request_from_json(data), catalogue))
    except InvalidInput as exc:
        raise BadInput(_option_words(exc)) from None
    except TherapyTimerError as exc:
        _fail(exc)


_UNITS_OPTIONS = {
    "timed": "CODE=MINUTES",
    "assistant_minutes": "--assistant",
    "untimed": "--untimed",
    "untimed_minutes": "--untimed",
    "date_of_service": "--date",
    "assistant_untimed": "--assistant-untimed",
}
"""The units command line's options, by the request fields the contract names."""


def _option_words(exc: InvalidInput) -> str:
    """A refusal of the units command line in the words typed: the contract's field
    'assistant_minutes.97110' is '--assistant 97110' there ('untimed[0]' is '--untimed')."""
    field, dot, key = exc.field.partition(".")
    option = _UNITS_OPTIONS.get(field.partition("[")[0])
    if option is None:
        return str(exc)
    return f"{option} {key}: {exc.message}" if dot else f"{option}: {exc.message}"


def _answer_file(request_file: Any, catalogue: Catalogue, as_json: bool) -> None:
    from therapy_timer.contract import (
        MAX_REQUEST_BYTES,
        answer_batch,
        answer_batch_pieces,
        answer_json,
    )
    from therapy_timer.contract import dumps as answer_text
    from therapy_timer.contract import loads as load_request
    from therapy_timer.rules import quote

    name = getattr(request_file, "name", "-")
    source = "request" if name in ("-", "<stdin>") else f"request file {quote(name)}"
    text = request_file.read(MAX_REQUEST_BYTES + 1)
    if len(text) > MAX_REQUEST_BYTES:
        raise BadInput(
            f"{source}: larger than {MAX_REQUEST_BYTES >> 20} MiB; split it into smaller files"
        )
    try:
        payload = load_request(text, source)
    except InvalidInput as exc:
        _fail(exc)
    if isinstance(payload, list):
        pieces: Iterable[str]
        if len(payload) <= 1:  # one answer is printed indented, for a person
            answers = answer_batch(payload, catalogue)
            pieces = (answer_text(answers, pretty=True),)
            refused = sum("error" in a for a in answers)
        else:  # the same text as dumps(answer_batch(...)), from cached parts (issue 13)
            pieces, refused = answer_batch_pieces(payload, catalogue)
            # The interpreter's last collection, as the command exits, would scan every record
            # the rules cached for the batch (~175,000 objects after 100,000 requests, ~0.1 s),
            # none of them garbage: frozen, they are left to the process's end.
            atexit.register(gc.freeze)
        sys.stdout.writelines(pieces)
        sys.stdout.write("\n")
        if refused:
            sys.exit(BAD_INPUT_STATUS)
        return
    try:
        answer = answer_json(payload, catalogue)
    except TherapyTimerError as exc:
        _fail(exc)
    if as_json:
        click.echo(json.dumps(answer, indent=2))
    else:
        click.echo(answer["note"], nl=False)


# --------------------------------------------------------------------------------------------
# Stopwatches and sessions on the window's database (foot pedals, macro pads and scripts)

BY_CHOICE = click.Choice([f.value for f in FurnishedBy], case_sensitive=False)
ROLE_CHOICE = click.Choice([r.value for r in Role], case_sensitive=False)
METHOD_CHOICE = click.Choice([m.value for m in Method], case_sensitive=False)
patient_option = click.option(
    "--patient", help="Patient reference (initials or MRN) of the session to act on."
)
session_option = click.option(
    "--session",
    "session_ref",
    metavar="ID",
    help="The session to act on: its id or the first characters of it (session list shows them).",
)


def _session(
    clinic: Clinic,
    patient: str | None,
    session_ref: str | None,
    create: Header | None = None,
    clinician: str | None = None,
) -> Session:
    return clinic.session_to_act_on(
        patient=patient, session=session_ref, create=create, clinician=clinician
    )


def _local(moment: dt.datetime | None, fmt: str = "%H:%M:%S") -> str:
    """A stored UTC moment as the workstation's local time (UTC stays in --json)."""
    return "running" if moment is None else moment.astimezone().strftime(fmt)


def _status_json(clinic: Clinic, session: Session) -> dict[str, Any]:
    from therapy_timer.export import session_json

    try:
        stopwatch = clinic.stopwatch(session.id)
    except UnknownCode:  # a code no longer in the code file: say so, the others still show
        return {
            "session": session_json(session),
            "state": "unreadable",
            "furnished_by": None,
            "running": [],
            "paused_codes": [],
            "codes": {},
            **_units_or_problem(clinic.summary_or_problem(session.id)),
        }
    now = stopwatch.now()
    totals = stopwatch.totals()
    behind = clinic.clock_warning(session.id)
    return {
        "session": session_json(session),
        "clock_warning": None if behind is None else behind.message,
        "state": stopwatch.state.value,
        "furnished_by": stopwatch.furnished_by.value,
        "running": [
            {
                "code": seg.code,
                "furnished_by": seg.furnished_by.value,
                "seconds": int(seg.elapsed(now).total_seconds()),
                "code_minutes": totals[seg.code].minutes,
            }
            for seg in stopwatch.running
        ],
        "paused_codes": [r.code for r in stopwatch.paused.resume] if stopwatch.paused else [],
        "codes": {
            code: {"minutes": t.minutes, "assistant_minutes": t.assistant_minutes}
            for code, t in sorted(totals.items())
        },
        **_units_or_problem(clinic.summary_or_problem(session.id)),
    }


def _units_or_problem(answer: Result | SessionProblem) -> dict[str, Any]:
    """The units so far, or (a session the rules refuse) what to fix: status still works."""
    from therapy_timer.model import SessionProblem

    if isinstance(answer, SessionProblem):
        return {"total_timed_units": None, "problem": answer.text}
    return {"total_timed_units": answer.total_timed_units}


def _print_status(status: dict[str, Any]) -> None:
    from therapy_timer.clinic import SHORT_ID

    session = status["session"]
    click.echo(
        f"{session['patient_ref']} - {session['clinician']} ({session['role']}), "
        f"{session['payer_profile']}: {status['state']}"
        + (f", furnished by {status['furnished_by']}" if status["furnished_by"] else "")
        + f"  [session {session['id'][:SHORT_ID]}]"
    )
    for item in status["running"]:
        minutes, seconds = divmod(item["seconds"], 60)
        click.echo(f"  running {item['code']} {minutes}:{seconds:02d} ({item['furnished_by']})")
    for code in status["paused_codes"]:
        click.echo(f"  paused {code}")
    for code, figures in status["codes"].items():
        click.echo(f"  {code}: {figures['minutes']} min")
    if status.get("clock_warning"):
        click.echo(f"  warning: {status['clock_warning']}")
    if status.get("problem"):
        click.echo(f"  problem: {status['problem']}")
    else:
        click.echo(f"  timed units so far: {status['total_timed_units']}")


@main.group()
def timer() -> None:
    """Start, stop and pause the stopwatches of an open session.

    With several patients' sessions open, name one with --patient REF or --session ID (an id
    prefix is enough); with one open, it is the one.
    """


@timer.command("start")
@click.argument("code")
@patient_option
@session_option
@click.option(
    "--by",
    "furnished_by",
    type=BY_CHOICE,
    help="Who furnishes the minutes (default: as before in the session, else its clinician:"
    " assistant for a PTA or OTA).",
)
@click.option(
    "--clinician",
    help="Whose session: this clinician's for --patient, or a new one (default for a new one:"
    " the clinic setting, else your login).",
)
@click.option(
    "--role",
    type=ROLE_CHOICE,
    help="For a new session; an open session of another role is refused, not used.",
)
@click.option(
    "--payer", help="Payer profile for a new session (default: the clinic's; see payer list)."
)
@pass_context
@plain_errors
def timer_start(
    context: Context,
    code: str,
    patient: str | None,
    session_ref: str | None,
    furnished_by: str | None,
    clinician: str | None,
    role: str | None,
    payer: str | None,
) -> None:
    """Start CODE (stopping the code that runs); opens a session for --patient if needed."""
    from therapy_timer.clinic import Header

    with context.clinic() as clinic:
        entry = clinic.catalogue.get(code, "code")  # before a session is created for it
        defaults = clinic.command_defaults()
        # An empty --clinician or --payer (a script's unset variable) is refused below, never
        # taken for the default: the session would be someone else's, or billed another way.
        header = Header(
            clinician=(defaults.clinician or _login()) if clinician is None else clinician,
            role=Role(role.upper()) if role else defaults.role,
            payer_profile=defaults.payer_profile
            if payer is None
            else clinic.payer_profile(payer).name,
        )
        # A named clinician works in their own session of the patient, never in a colleague's.
        session = _session(clinic, patient, session_ref, create=header, clinician=clinician)
        if role and session.role is not header.role:
            # The session's role decides its modifiers and what it may record (R7): a foot
            # pedal's --role for an open session of another role was ignored without a word.
            from therapy_timer.clinic import SHORT_ID

            day = session.date_of_service
            dated = "" if day == clinic.today() else f" (dated {day.isoformat()})"
            # Without --clinician the patient's open session may be a colleague's: left out,
            # --role would record the assistant's minutes as the therapist's.
            own = "" if clinician else "give --clinician and your name to record in your own, "
            raise BadInput(
                f"--role {header.role.value}: {session.clinician}'s open session"
                f" {session.id[:SHORT_ID]}{dated} for patient {session.patient_ref} is under"
                f" {session.role.value}; {own}leave --role out (or give --role"
                f" {session.role.value}) to record in it, or end it first to start one as"
                f" {header.role.value}"
            )
        by = FurnishedBy(furnished_by.lower()) if furnished_by else None
        outcome = clinic.start(session.id, entry.code, by)
        _say_if_left(outcome)
        _echo_change(outcome.change.stopped_codes, outcome.change.started_codes)
        for warning in outcome.change.warnings:
            click.echo(f"warning: {warning.message}", err=True)


def _login() -> str:
    """Who runs the command; getpass is imported only by the commands that ask (start-up)."""
    import getpass

    return getpass.getuser()


def _echo_change(stopped: tuple[str, ...], started: tuple[str, ...]) -> None:
    for code in stopped:
        click.echo(f"stopped {code}")
    for code in started:
        click.echo(f"started {code}")


@timer.command("stop")
@click.argument("code", required=False)
@patient_option
@session_option
@pass_context
@plain_errors
def timer_stop(
    context: Context, code: str | None, patient: str | None, session_ref: str | None
) -> None:
    """Stop CODE, or everything running."""
    with context.clinic() as clinic:
        outcome = clinic.stop(_session(clinic, patient, session_ref).id, code)
        _echo_change(outcome.change.stopped_codes, ())


@timer.command("pause")
@patient_option
@session_option
@pass_context
@plain_errors
def timer_pause(context: Context, patient: str | None, session_ref: str | None) -> None:
    """Pause for an interruption (the running codes resume together)."""
    with context.clinic() as clinic:
        outcome = clinic.pause(_session(clinic, patient, session_ref).id)
        click.echo("paused " + " ".join(outcome.change.stopped_codes))


@timer.command("resume")
@patient_option
@session_option
@pass_context
@plain_errors
def timer_resume(context: Context, patient: str | None, session_ref: str | None) -> None:
    """Resume what the pause stopped."""
    with context.clinic() as clinic:
        outcome = clinic.resume(_session(clinic, patient, session_ref).id)
        _say_if_left(outcome)
        click.echo("resumed " + " ".join(outcome.change.started_codes))


def _say_if_left(outcome: Outcome) -> None:
    """A start or resume that closed an earlier day's session left open says so on stderr,
    with today's session's id: a script that named the old one with --session names it next
    (the old one is closed, and refuses the timers)."""
    if outcome.left is not None:
        from therapy_timer.clinic import SHORT_ID

        today = outcome.session.id[:SHORT_ID]
        click.echo(f"{outcome.left_text} Name it with --session {today}.", err=True)


@timer.command("status")
@patient_option
@session_option
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="One object for the session named; a list of every open session otherwise.",
)
@pass_context
@plain_errors
def timer_status(
    context: Context, patient: str | None, session_ref: str | None, as_json: bool
) -> None:
    """What runs now, and the minutes and units so far: every open session unless one is named."""
    with context.clinic() as clinic:
        if patient is None and session_ref is None:
            statuses = [_status_json(clinic, s) for s in clinic.open_sessions()]
        else:
            statuses = [_status_json(clinic, _session(clinic, patient, session_ref))]
    if as_json:
        named = patient is not None or session_ref is not None
        click.echo(json.dumps(statuses[0] if named else statuses, indent=2))
        return
    if not statuses:
        click.echo("No open sessions.")
    for status in statuses:
        _print_status(status)


@main.group()
def session() -> None:
    """End, list, show and correct treatment sessions.

    SESSION and SEGMENT are ids as session list and session show print them; the first
    characters are enough when no other id starts with them.
    """


@session.command("end")
@patient_option
@session_option
@click.option("--json", "as_json", is_flag=True, help="Print the units answer as JSON.")
@pass_context
@plain_errors
def session_end(
    context: Context, patient: str | None, session_ref: str | None, as_json: bool
) -> None:
    """Stop everything, close the open session, print its units and note."""
    from therapy_timer.contract import result_json
    from therapy_timer.export import session_json
    from therapy_timer.model import SessionProblem

    with context.clinic() as clinic:
        chosen = _session(clinic, patient, session_ref)
        behind = clinic.clock_warning(chosen.id)
        closed = clinic.end_session(chosen.id)
        result = clinic.summary_or_problem(closed.id)
    if behind is not None:
        click.echo(f"warning: {behind.message}", err=True)
    if isinstance(result, SessionProblem):  # closed all the same: say what to correct
        if as_json:
            click.echo(json.dumps({"session": session_json(closed), "problem": result.text}))
        else:
            click.echo(f"Session closed, but it cannot be billed as it is: {result.text}")
    elif as_json:
        click.echo(json.dumps({"session": session_json(closed), **result_json(result)}, indent=2))
    else:
        _print_result(result)


@session.command("list")
@click.option(
    "--date", "day", type=_DigitsDateTime(["%Y-%m-%d"]), help="Date of service (default: today)."
)
@click.option("--json", "as_json", is_flag=True)
@click.option(
    "--clinic",
    "clinic_wide",
    is_flag=True,
    help="Every workstation's closed sessions, from the clinic server.",
)
@pass_context
@plain_errors
def session_list(
    context: Context, day: dt.datetime | None, as_json: bool, clinic_wide: bool
) -> None:
    """The sessions of one date of service, with what became of each (open, closed, amended,
    exported, imported)."""
    from therapy_timer.clinic import SHORT_ID
    from therapy_timer.export import session_json

    with context.clinic() as here, ExitStack() as scope:
        when = day.date() if day else here.today()
        clinic = scope.enter_context(here.whole_clinic(when, when)) if clinic_wide else here
        sessions = clinic.list_sessions(day=when)
        results = clinic.summaries_or_problems(sessions)
        states = clinic.session_states(sessions)
        rows = [
            {**session_json(s), "state": list(states[s.id]), **_units_or_problem(results[s.id])}
            for s in sessions
        ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo(f"No sessions on {when.isoformat()}.")
    for row in rows:
        units = (
            f"problem: {row['problem']}"
            if row.get("problem")
            else f"{row['total_timed_units']} timed units"
        )
        click.echo(
            f"{row['id'][:SHORT_ID]}  {row['patient_ref']:<10} {row['clinician']} ({row['role']})"
            f"  {', '.join(row['state'])}  {units}"
        )


@session.command("show")
@click.argument("session_id", metavar="SESSION")
@click.option("--json", "as_json", is_flag=True, help="Everything, times in UTC.")
@pass_context
@plain_errors
def session_show(context: Context, session_id: str, as_json: bool) -> None:
    """One session: who, which payer, its segments (local times), untimed services, units, note."""
    from therapy_timer.clinic import SHORT_ID, describe_profile
    from therapy_timer.contract import result_json
    from therapy_timer.export import segment_json, session_json
    from therapy_timer.model import SessionProblem

    with context.clinic() as clinic:
        chosen = clinic.find_session(session_id)
        segments = clinic.segments(chosen.id)
        untimed = clinic.untimed_services(chosen.id)
        answer = clinic.summary_or_problem(chosen.id)
        state = clinic.session_states([chosen])[chosen.id]
        profile = clinic.payer_profile(chosen.payer_profile)
    if not as_json:
        click.echo(f"Session {chosen.id} ({', '.join(state)})")
        click.echo(f"  Patient:    {chosen.patient_ref}")
        click.echo(f"  Clinician:  {chosen.clinician} ({chosen.role.value})")
        click.echo(f"  Payer:      {profile.name} ({describe_profile(profile)})")
        click.echo(f"  Date:       {chosen.date_of_service.isoformat()}")
        # The zone of the session's own times, not of the day it is read (a summer session
        # read in winter was said EST beside its EDT times); across a change of the clocks
        # each time says its own ("01:30:00 EDT-01:10:00 EST").
        moments = [m for s in segments for m in (s.start_utc, s.stop_utc) if m is not None]
        zones = {m.astimezone().strftime("%Z, UTC%z") for m in moments}
        zone = min(moments, default=dt.datetime.now(dt.UTC)).astimezone().strftime("%Z, UTC%z")
        fmt = "%H:%M:%S" if len(zones) < 2 else "%H:%M:%S %Z"
        click.echo(f"Segments (local time, {zone}); correct with: session edit SEGMENT --reason:")
        if not segments:
            click.echo("  (none)")
        for seg in segments:
            click.echo(
                f"  {seg.id[:SHORT_ID]}  {seg.code}"
                f"  {_local(seg.start_utc, fmt)}-{_local(seg.stop_utc, fmt)}"
                f"  {seg.furnished_by.value}"
            )
        if untimed:
            click.echo("Untimed services:")
            for service in untimed:
                minutes = "" if service.minutes is None else f"  {service.minutes} min"
                click.echo(f"  {service.code}{minutes}  {service.furnished_by.value}")
        if isinstance(answer, SessionProblem):
            click.echo(f"Problem: {answer.text}")
        else:
            _print_result(answer)
        return
    shown = {
        "session": session_json(chosen),
        "state": list(state),
        "segments": [segment_json(seg) for seg in segments],
        "untimed": [
            {"code": u.code, "minutes": u.minutes, "furnished_by": u.furnished_by.value}
            for u in untimed
        ],
        **({"problem": answer.text} if isinstance(answer, SessionProblem) else result_json(answer)),
    }
    click.echo(json.dumps(shown, indent=2))


@session.command("edit")
@click.argument("segment_id", metavar="SEGMENT")
@click.option("--minutes", type=WHOLE_NUMBER, help="New length of the segment, from its start.")
@click.option(
    "--shift-later",
    is_flag=True,
    help="Make room for a longer segment by moving the session's later timed codes later"
    " (supervised modalities stay where they ran).",
)
@click.option("--code", help="The code the minutes belong to.")
@click.option("--by", "furnished_by", type=BY_CHOICE, help="Who furnished them.")
@click.option("--reason", required=True, help="Why (kept in the audit log).")
@pass_context
@plain_errors
def session_edit(
    context: Context,
    segment_id: str,
    minutes: int | None,
    shift_later: bool,
    code: str | None,
    furnished_by: str | None,
    reason: str,
) -> None:
    """Correct a recorded segment (ids: session show SESSION); a closed session is amended.

    A segment made longer may not run into the next one: the message names it, and
    --shift-later moves it and every later timed code of the session instead (a supervised
    modality runs on its own timer and stays where it ran).
    """
    from therapy_timer.clinic import SHORT_ID

    if minutes is None and code is None and furnished_by is None:
        raise BadInput("--minutes, --code or --by: say what to change")
    with context.clinic() as clinic:
        segment = clinic.find_segment(segment_id)
        by = FurnishedBy(furnished_by.lower()) if furnished_by else None
        changed = []
        if minutes is not None:  # one write with the code and furnisher: all or nothing
            changed = list(
                clinic.lengthen_segment(
                    segment.id,
                    minutes,
                    reason=reason,
                    shift_later=shift_later,
                    code=code,
                    furnished_by=by,
                )
            )
            segment = changed[0]
        else:
            segment = clinic.amend_segment(segment.id, reason=reason, code=code, furnished_by=by)
        click.echo(f"changed segment {segment.id[:SHORT_ID]} of session {segment.session_id}")
        for moved in changed[1:]:
            click.echo(
                f"moved {moved.code} (segment {moved.id[:SHORT_ID]}) to"
                f" {_local(moved.start_utc, '%H:%M')}-{_local(moved.stop_utc, '%H:%M')}"
            )


@session.command("add-segment")
@click.argument("session_id", metavar="SESSION")
@click.argument("code")
@click.option(
    "--start",
    "start",
    type=_DigitsDateTime(["%H:%M"]),
    required=True,
    help="Local time it began, HH:MM, on the session's date of service.",
)
@click.option("--minutes", type=WHOLE_NUMBER, required=True, help="How long it lasted.")
@click.option(
    "--by",
    "furnished_by",
    type=BY_CHOICE,
    help="Who furnished it (default: the session's clinician: assistant for a PTA or OTA).",
)
@click.option("--reason", required=True, help="Why it was not timed (kept in the audit log).")
@pass_context
@plain_errors
def session_add_segment(
    context: Context,
    session_id: str,
    code: str,
    start: dt.datetime,
    minutes: int,
    furnished_by: str | None,
    reason: str,
) -> None:
    """Add a code nobody timed to a session (a closed one is amended)."""
    from therapy_timer.clinic import SHORT_ID

    with context.clinic() as clinic:
        added = clinic.add_forgotten_segment(
            session_id,
            code,
            start=start.time(),
            minutes=minutes,
            furnished_by=FurnishedBy(furnished_by.lower()) if furnished_by else None,
            reason=reason,
        )
        click.echo(
            f"added {added.code} {_local(added.start_utc, '%H:%M')}-"
            f"{_local(added.stop_utc, '%H:%M')} (segment {added.id[:SHORT_ID]}) to session"
            f" {added.session_id}"
        )


@session.command("amend")
@click.argument("session_id", metavar="SESSION")
@click.option("--patient", "patient_ref", help="Another patient reference (two shared one).")
@click.option("--payer", "payer_profile", help="Another payer profile (the wrong one was used).")
@click.option("--reason", required=True, help="Why (kept in the audit log).")
@pass_context
@plain_errors
def session_amend(
    context: Context,
    session_id: str,
    patient_ref: str | None,
    payer_profile: str | None,
    reason: str,
) -> None:
    """Give a session another patient reference or payer: the claim days it leaves and joins
    are both due to be exported again."""
    from therapy_timer.clinic import SHORT_ID

    if patient_ref is None and payer_profile is None:
        raise BadInput("--patient or --payer: say what to change")
    with context.clinic() as clinic:
        before = clinic.find_session(session_id)
        chosen = clinic.move_session(
            before.id, reason=reason, patient_ref=patient_ref, payer_profile=payer_profile
        )
    click.echo(
        f"session {chosen.id[:SHORT_ID]}: patient {chosen.patient_ref}, payer"
        f" {chosen.payer_profile}"
        + (" (it said so already: nothing changed)" if chosen == before else "")
    )


@main.group()
def untimed() -> None:
    """Untimed services (evaluations, group therapy, supervised modalities)."""


@untimed.command("add")
@click.argument("code")
@click.option(
    "--minutes", type=WHOLE_NUMBER, help="Minutes it took (counted in total treatment time)."
)
@click.option(
    "--by",
    "furnished_by",
    type=BY_CHOICE,
    help="Who furnished it (default: the session's clinician: assistant for a PTA or OTA).",
)
@patient_option
@session_option
@click.option("--reason", default="", help="Why, when adding to a closed --session (audited).")
@pass_context
@plain_errors
def untimed_add(
    context: Context,
    code: str,
    minutes: int | None,
    furnished_by: str | None,
    patient: str | None,
    session_ref: str | None,
    reason: str,
) -> None:
    """Record an untimed service on the open session, or on any --session with a --reason."""
    with context.clinic() as clinic:
        if session_ref is not None:
            target = clinic.find_session(session_ref, patient=patient)
        else:
            target = clinic.session_for_command(patient)
        added = clinic.add_untimed(
            target.id,
            code,
            minutes=minutes,
            furnished_by=FurnishedBy(furnished_by.lower()) if furnished_by else None,
            reason=reason,
        )
        click.echo(f"added {added.code} to {target.patient_ref}")


@untimed.command("remove")
@click.argument("code")
@patient_option
@session_option
@click.option("--reason", required=True, help="Why (kept in the audit log).")
@pass_context
@plain_errors
def untimed_remove(
    context: Context, code: str, patient: str | None, session_ref: str | None, reason: str
) -> None:
    """Remove an untimed service from the open session, or from any --session."""
    with context.clinic() as clinic:
        if session_ref is not None:
            target = clinic.find_session(session_ref, patient=patient)
        else:
            target = clinic.session_for_command(patient)
        removed = clinic.remove_untimed(target.id, code, reason=reason)
        click.echo(f"removed {removed[0].code} from {target.patient_ref}")


# --------------------------------------------------------------------------------------------
# Payer profiles: how a payer wants minutes turned into units


@main.group(help=PAYER_PROFILE_HELP)
def payer() -> None:
    pass


@payer.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_context
@plain_errors
def payer_list(context: Context, as_json: bool) -> None:
    """Every payer profile; the default one new sessions get is marked."""
    from therapy_timer.clinic import describe_profile

    with context.clinic() as clinic:
        profiles = clinic.payer_profiles()
        default = clinic.default_payer_profile()
    if as_json:
        click.echo(json.dumps([_profile_json(p, p.name == default) for p in profiles], indent=2))
        return
    for profile in profiles:
        mark = "  (default)" if profile.name == default else ""
        click.echo(f"{profile.name}: {describe_profile(profile)}{mark}")


@payer.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
@pass_context
@plain_errors
def payer_show(context: Context, name: str, as_json: bool) -> None:
    """One profile: its method and whether it uses CQ/CO."""
    from therapy_timer.clinic import describe_profile

    with context.clinic() as clinic:
        profile = clinic.payer_profile(name)
        is_default = profile.name == clinic.default_payer_profile()
    if as_json:
        click.echo(json.dumps(_profile_json(profile, is_default), indent=2))
        return
    click.echo(f"{profile.name}{'  (default)' if is_default else ''}")
    click.echo(f"  method: {profile.method.value} ({describe_profile(profile).split(', ')[0]})")
    click.echo(f"  CQ/CO on assistant minutes: {'yes' if profile.assistant_modifiers else 'no'}")


@payer.command("add")
@click.argument("name")
@click.option("--method", type=METHOD_CHOICE, required=True, help="cms or ama (any case).")
@click.option(
    "--no-assistant-modifiers", is_flag=True, help="This payer does not use CQ/CO (R7.10)."
)
@pass_context
@plain_errors
def payer_add(context: Context, name: str, method: str, no_assistant_modifiers: bool) -> None:
    """Add a payer profile (an existing one is never changed: its sessions would bill anew)."""
    from therapy_timer.clinic import describe_profile

    with context.clinic() as clinic:
        profile = clinic.add_payer_profile(
            name, method.lower(), assistant_modifiers=not no_assistant_modifiers
        )
    click.echo(f"added payer profile {profile.name}: {describe_profile(profile)}")


@payer.command("default")
@click.argument("name")
@pass_context
@plain_errors
def payer_default(context: Context, name: str) -> None:
    """Make NAME the profile new sessions start with."""
    with context.clinic() as clinic:
        profile = clinic.set_default_payer_profile(name)
    click.echo(f"new sessions now start with payer profile {profile.name}")


def _profile_json(profile: PayerProfile, is_default: bool) -> dict[str, Any]:
    return {
        "name": profile.name,
        "method": profile.method.value,
        "assistant_modifiers": profile.assistant_modifiers,
        "default": is_default,
    }


@main.command()
@click.option("--to", "dest", type=_PathType(), help="Backup file.")
@click.option("--force", is_flag=True, help="Replace an existing file.")
@pass_context
@plain_errors
def backup(context: Context, dest: Path | None, force: bool) -> None:
    """Copy the database now (SQLite's backup API); the app also keeps 14 daily backups."""
    from therapy_timer.clinic import Clinic

    with Clinic.open(context.data_dir, clock=context.clock, catalogue=context.catalogue()) as c:
        click.echo(str(c.backup(dest, force=force)))


@main.command()
@click.argument("file", type=_PathType())
@pass_context
@plain_errors
def restore(context: Context, file: Path) -> None:
    """Replace the database with a backup FILE (the current one is kept aside)."""
    from therapy_timer.clinic import Clinic

    kept = Clinic.restore(file, data_dir=context.data_dir, clock=context.clock)
    click.echo(f"restored {file}")
    if kept is not None:
        click.echo(f"the previous database was kept as {kept}")


# --------------------------------------------------------------------------------------------
# The front desk: export a day, merge other workstations' bundles

DATE = _DigitsDateTime(["%Y-%m-%d"])


@main.command()
@click.option("--date", "day", type=DATE, required=True, help="Date of service (YYYY-MM-DD).")
@click.option("--to", "until", type=DATE, help="Last date of a range.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(EXPORT_FORMATS, case_sensitive=False),
    default="csv",
    show_default=True,
)
@click.option(
    "--out",
    type=_PathType(),
    help="File to write (default: a preview on the terminal that marks nothing).",
)
@click.option("--force", is_flag=True, help="Replace an existing --out file.")
@click.option(
    "--mark-exported",
    "mark",
    is_flag=True,
    default=None,
    help="Mark the sessions exported even when only previewing.",
)
@click.option("--include-open", is_flag=True, help="List open sessions too, marked open.")
@click.option("--clinician", help="Only this clinician's sessions.")
@click.option("--workstation", default=_hostname, help="Name in a bundle.")
@click.option(
    "--clinic",
    "clinic_wide",
    is_flag=True,
    help="The whole clinic's sessions from the clinic server (see: clinic connect).",
)
@pass_context
@plain_errors
def export(
    context: Context,
    day: dt.datetime,
    until: dt.datetime | None,
    fmt: str,
    out: Path | None,
    force: bool,
    mark: bool | None,
    include_open: bool,
    clinician: str | None,
    workstation: str,
    clinic_wide: bool,
) -> None:
    """Export the day's sessions: CSV or JSON for billing, PDF to print, a bundle to merge.

    Written to --out, the sessions are marked exported; on the terminal it is a preview.
    """
    if clinician is not None and not clinician.strip():
        raise BadInput("--clinician: it is empty; give a clinician's name, or leave it out for all")
    render_pdf: PdfRenderer | None = None
    if fmt.lower() == "pdf":
        if out is None:
            raise BadInput("--out: a PDF needs a file name")
        # Qt only for a PDF, and only now: the other formats never load it.
        from therapy_timer.gui.report_pdf import write_pdf

        render_pdf = write_pdf
    with context.clinic() as clinic:
        if clinic_wide:
            if include_open:  # the server holds closed sessions only
                raise BadInput("--include-open: the clinic server holds closed sessions only")
            done = clinic.clinic_export(
                fmt,
                day.date(),
                until.date() if until else None,
                out=out,
                clinician=clinician,
                force=force,
                mark=mark,
                render_pdf=render_pdf,
            )
        else:
            done = clinic.export(
                fmt,
                day.date(),
                until.date() if until else None,
                out=out,
                include_open=include_open,
                clinician=clinician,
                workstation=workstation,
                force=force,
                mark=mark,
                render_pdf=render_pdf,
            )
    if done.path is None and done.text is not None:
        sys.stdout.write(done.text)
    where = str(done.path) if done.path is not None else "the terminal (a preview)"
    marked = f", {done.marked} marked exported" if done.marked else ", none marked exported"
    changed = f"; {done.changed_note}" if done.changed else ""
    click.echo(
        f"exported {done.sessions} session(s) as {fmt.lower()} to {where}{marked}{changed}",
        err=True,
    )


@main.command("import")
@click.argument("files", nargs=-1, required=True, type=_PathType())
@pass_context
@plain_errors
def import_(context: Context, files: tuple[Path, ...]) -> None:
    """Merge bundles from other workstations (the same bundle twice changes nothing)."""
    with context.clinic() as clinic:
        report = clinic.import_bundles(list(files))
    click.echo(
        f"added {len(report.added)}, unchanged {len(report.unchanged)}, "
        f"conflicts {len(report.conflicts)}"
    )
    for session_id, why, path in zip(
        report.conflicts, report.why, report.conflict_files, strict=True
    ):
        click.echo(f"conflict, not imported: session {session_id}: {why}; kept aside in {path}")
    if report.conflicts:
        sys.exit(1)


# -- conflicts ---------------------------------------------------------------------------------


@main.group()
def conflicts() -> None:
    """Other versions of sessions that imports kept aside: list, show, accept or drop one."""


@conflicts.command("list")
@click.option("--all", "every", is_flag=True, help="Also those already accepted or dropped.")
@click.option("--json", "as_json", is_flag=True, help="As JSON.")
@pass_context
@plain_errors
def conflicts_list(context: Context, every: bool, as_json: bool) -> None:
    """Kept-aside versions, oldest first (undecided ones unless --all)."""
    with context.clinic() as clinic:
        found = clinic.conflicts(every=every)
    if as_json:
        click.echo(json.dumps([_conflict_json(c, with_record=False) for c in found], indent=2))
        return
    if not found:
        click.echo("no conflicts kept aside" if not every else "no conflicts were ever kept")
    for c in found:
        record = c.record
        click.echo(
            f"{c.id}\t{c.status.value}\t{c.session_id}\t{record.get('date_of_service')}"
            f"\t{record.get('patient_ref')}\tfrom {c.origin}: {c.why}"
        )


@conflicts.command("show")
@click.argument("conflict_id")
@pass_context
@plain_errors
def conflicts_show(context: Context, conflict_id: str) -> None:
    """One kept-aside version in full (JSON), beside why it was kept aside."""
    with context.clinic() as clinic:
        found = clinic.conflict(conflict_id)
    click.echo(json.dumps(_conflict_json(found, with_record=True), indent=2, sort_keys=True))


@conflicts.command("accept")
@click.argument("conflict_id")
@click.option("--reason", required=True, help="Why this version is the right one.")
@pass_context
@plain_errors
def conflicts_accept(context: Context, conflict_id: str, reason: str) -> None:
    """Replace the session here with the kept-aside version (audited; marks it amended)."""
    with context.clinic() as clinic:
        session = clinic.accept_conflict(conflict_id, reason)
    click.echo(f"accepted: session {session.id} ({session.patient_ref}) now holds that version")


@conflicts.command("drop")
@click.argument("conflict_id")
@click.option("--reason", required=True, help="Why the session here stays as it is.")
@pass_context
@plain_errors
def conflicts_drop(context: Context, conflict_id: str, reason: str) -> None:
    """Keep the session here as it is; the other version is recorded as dropped (audited)."""
    with context.clinic() as clinic:
        dropped = clinic.drop_conflict(conflict_id, reason)
    click.echo(f"dropped version {dropped.id} of session {dropped.session_id}")


def _conflict_json(conflict: Conflict, *, with_record: bool) -> dict[str, Any]:
    found: dict[str, Any] = {
        "id": conflict.id,
        "session_id": conflict.session_id,
        "origin": conflict.origin,
        "source": conflict.source,
        "why": conflict.why,
        "received_utc": conflict.received_utc.isoformat(),
        "status": conflict.status.value,
        "decided_utc": None if conflict.decided_utc is None else conflict.decided_utc.isoformat(),
    }
    if with_record:
        found["session"] = conflict.record
    return found


# -- the clinic server ------------------------------------------------------------------------


@main.group()
def clinic() -> None:
    """Sync this workstation to the clinic's PostgreSQL server (docs/clinic-server.md)."""


def _when(moment: dt.datetime | None) -> str:
    return "never" if moment is None else moment.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


@clinic.command("connect")
@click.argument("dsn")
@pass_context
@plain_errors
def clinic_connect(context: Context, dsn: str) -> None:
    """Test DSN, create or upgrade the server schema where the role may, remember DSN (without
    its password: keep that in ~/.pgpass or a service file)."""
    with context.clinic() as this:
        found = this.connect_server(dsn)
        remembered = this.server_dsn()
        password_dropped = this.dsn_has_password(dsn)
        tls = this.server_tls_warning()
    applied = f", schema upgraded ({', '.join(found.applied)})" if found.applied else ""
    click.echo(f"connected as {found.role}; server schema version {found.version}{applied}")
    click.echo(f"remembered: {remembered}")
    if found.superuser:
        click.echo(
            "warning: this is a superuser role; each workstation should log in as its own role"
            " (clinic init-server --workstation NAME)",
            err=True,
        )
    elif not (found.is_workstation or found.is_desk):
        click.echo(
            f"warning: {found.role} is neither a workstation nor the desk role; sync will be"
            " refused until the administrator grants one",
            err=True,
        )
    if password_dropped:
        click.echo("the password was not remembered; put it in ~/.pgpass", err=True)
    if tls:
        click.echo(tls, err=True)


@clinic.command("disconnect")
@pass_context
@plain_errors
def clinic_disconnect(context: Context) -> None:
    """Stop syncing to the clinic server (the server keeps what it has)."""
    with context.clinic() as this:
        was = this.disconnect_server()
    click.echo("disconnected from the clinic server" if was else "no clinic server was configured")


@clinic.command("sync")
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
@pass_context
@plain_errors
def clinic_sync(context: Context, as_json: bool) -> None:
    """Push what the server does not have yet; exit 0 when everything is on the server, 1
    when the server cannot be reached or keeps a version aside for the desk (the next sync
    tries again), 2 when a session stays here because the server cannot store it (named on
    stderr)."""
    with context.clinic() as this:
        report = this.sync_server()
    if as_json:
        click.echo(json.dumps(report.as_json(), indent=2))
    elif report.desk:
        click.echo(
            f"connected as {report.workstation}, the front desk's role: it reads every"
            " workstation's sessions and sends none (nothing to sync)"
        )
    else:
        click.echo(
            f"synced as {report.workstation}: added {report.added}, amended {report.amended},"
            f" unchanged {report.unchanged}, conflicts {report.conflicts},"
            f" audit entries added {report.audit_added}"
        )
        for session_id in report.conflict_ids:
            click.echo(f"conflict, kept aside on the server for the desk: session {session_id}")
        if report.audit_conflicts:
            click.echo(f"{report.audit_conflicts} audit entries differ from the server's copy")
        if report.waiting:
            click.echo(
                f"{report.waiting} kept-aside version(s) of this workstation wait for the desk"
                " (therapy-timer clinic conflicts, at the desk)"
            )
    for held in report.held:
        click.echo(held.message, err=True)
    if report.clock_message:
        click.echo(f"warning: {report.clock_message}", err=True)
    if report.not_sent:
        click.echo(
            f"{report.not_sent} closed session(s) recorded at this desk are not on the clinic"
            " server: the desk's role sends none. Bill them from here ('therapy-timer export"
            " --date D'), or connect this computer as a workstation role to send them.",
            err=True,
        )
    if report.held:
        sys.exit(2)  # recorded here as the server cannot take it: what the user must act on
    if not report.complete:
        sys.exit(1)


@clinic.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@pass_context
@plain_errors
def clinic_status(context: Context, as_json: bool) -> None:
    """Server reachable, last sync, pending changes, each workstation's last sync."""
    with context.clinic() as this:
        status = this.server_status()
    if as_json:
        click.echo(json.dumps(status.as_json(), indent=2))
        return
    click.echo(f"server: {status.dsn}")
    if status.reachable:
        click.echo("reachable: yes")
    elif status.refused:  # it answered: the network is not what to look at
        click.echo(f"reachable: yes, but {status.problem}")
    else:
        click.echo(f"reachable: no ({status.problem})")
    if status.tls_warning:
        click.echo(status.tls_warning)
    if status.clock_message:
        click.echo(f"warning: {status.clock_message}")
    if status.desk:
        click.echo(
            f"{status.role} is the front desk's role: it reads every workstation and sends nothing"
        )
        if status.pending_sessions:
            click.echo(
                f"{status.pending_sessions} closed session(s) recorded at this desk are not on"
                " the clinic server: bill them from here, or connect this computer as a"
                " workstation role"
            )
    else:
        click.echo(f"last sync: {_when(status.last_sync_utc)}")
        click.echo(
            f"pending: {status.pending_sessions} closed session(s),"
            f" {status.pending_audit} audit entries"
        )
    if status.held:
        click.echo(
            f"held on this workstation (the server cannot store them): {len(status.held)}"
            " session(s), named by clinic sync: " + ", ".join(status.held)
        )
    for station in status.workstations:
        running = ", ".join(f"{r['code']} for {r['patient_ref']}" for r in station.running)
        click.echo(
            f"  {station.name}: last sync {_when(station.last_sync_utc)},"
            f" {station.sessions} session(s)" + (f", running {running}" if running else "")
        )


@clinic.command("init-server")
@click.argument("dsn")
@click.option(
    "--workstation",
    "workstations",
    multiple=True,
    metavar="ROLE",
    help="Create (or grant) a workstation login role; repeatable.",
)
@click.option(
    "--desk",
    "desks",
    multiple=True,
    metavar="ROLE",
    help="Create (or grant) a front-desk login role; repeatable.",
)
@plain_errors
def clinic_init_server(dsn: str, workstations: tuple[str, ...], desks: tuple[str, ...]) -> None:
    """Create the roles and the schema on the clinic server (run as its administrator)."""
    from therapy_timer.clinic import Clinic

    found = Clinic.init_server(dsn, workstations=workstations, desks=desks)
    click.echo(f"clinic server ready: schema version {found.version}, clinic {found.clinic_id}")
    for name in workstations:
        click.echo(f"workstation role: {name} (set its password with \\password {name})")
    for name in desks:
        click.echo(f"desk role: {name} (set its password with \\password {name})")


@clinic.command("conflicts")
@click.option("--all", "settled", is_flag=True, help="Settled ones too.")
@click.option("--json", "as_json", is_flag=True, help="Print them as JSON.")
@pass_context
@plain_errors
def clinic_conflicts(context: Context, settled: bool, as_json: bool) -> None:
    """Versions the clinic server kept aside rather than write over (the desk sees all)."""
    with context.clinic() as this:
        found = this.server_conflicts(settled=settled)
    if as_json:
        click.echo(json.dumps([k.as_json() for k in found], indent=2))
        return
    if not found:
        click.echo("no kept-aside versions")
    for kept in found:
        state = kept.resolution or "waiting"
        click.echo(
            f"{kept.id}: session {kept.session_id} ({kept.record.get('patient_ref')},"
            f" {kept.record.get('date_of_service')}) from {kept.workstation}: {kept.why} [{state}]"
        )


@clinic.command("settle")
@click.argument("conflict")
@click.argument("decision", type=click.Choice(["accept", "drop"]))
@click.option("--reason", required=True, help="Why (kept in the server's events).")
@pass_context
@plain_errors
def clinic_settle(context: Context, conflict: str, decision: str, reason: str) -> None:
    """The desk accepts a kept-aside version (the server's copy is kept as settled) or drops it."""
    done = {"accept": "accepted", "drop": "dropped"}[decision]
    with context.clinic() as this:
        session_id = this.settle_server_conflict(conflict, done, reason)
    click.echo(f"{done}: kept-aside version {conflict} of session {session_id}")
