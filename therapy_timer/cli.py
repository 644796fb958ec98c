"""The ``therapy-timer`` command: thin click commands over the library modules."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from therapy_timer import __version__, paths
from therapy_timer.codes import CLINIC_CODES_FILE, Catalogue, Discipline, load_catalogue
from therapy_timer.errors import InvalidInput, TherapyTimerError
from therapy_timer.rules import (
    Method,
    Result,
    answer_batch,
    answer_json,
    evaluate,
    request_from_json,
)

BAD_INPUT_STATUS = 2


class BadInput(click.ClickException):
    """Bad input from the user or another program: exit status 2, one plain line on stderr."""

    exit_code = BAD_INPUT_STATUS


class Context:
    """What every subcommand shares: where the data lives, and the code catalogue."""

    def __init__(self, data_dir: Path | None) -> None:
        self.data_dir = paths.data_dir(data_dir)

    def catalogue(self) -> Catalogue:
        try:
            return load_catalogue(self.data_dir / CLINIC_CODES_FILE)
        except InvalidInput as exc:
            raise BadInput(f"clinic code file: {exc}") from None


pass_context = click.make_pass_decorator(Context)


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="therapy-timer")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar=paths.DATA_DIR_ENV,
    help=f"Folder for the database and clinic files (default: per-user data folder; "
    f"env {paths.DATA_DIR_ENV}).",
)
@click.pass_context
def main(ctx: click.Context, data_dir: Path | None) -> None:
    """Per-code treatment stopwatches and billing-correct units for PT, OT and SLP."""
    ctx.obj = Context(data_dir)
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


def _code_minutes(
    pairs: tuple[str, ...], option: str, minutes_optional: bool = False
) -> dict[str, Any]:
    """Parse CODE=MINUTES words; the minutes stay raw so the rules module names what is wrong."""
    parsed: dict[str, Any] = {}
    for pair in pairs:
        code, sep, minutes = pair.partition("=")
        if not sep and minutes_optional:
            parsed[code] = None
            continue
        if not sep or not code:
            raise BadInput(f"{option}: expected CODE=MINUTES, got {pair!r}")
        try:
            parsed[code] = int(minutes)
        except ValueError:
            raise BadInput(
                f"{option} {code}: minutes must be a whole number, got {minutes!r}"
            ) from None
    return parsed


def _fail(exc: TherapyTimerError) -> NoReturn:
    raise BadInput(str(exc)) from None


def _print_result(result: Result) -> None:
    click.echo("Lines:")
    if not result.lines:
        click.echo("  (nothing billable)")
    for line in result.lines:
        click.echo(f"  {'-'.join((line.code, *line.modifiers)):<16} {line.units} unit(s)")
    if result.alternatives:
        click.echo("Equally valid allocations of the timed units (R2.8):")
        for alternative in result.alternatives:
            click.echo("  " + ", ".join(f"{c} x {u}" for c, u in alternative.items()))
    if result.warnings:
        click.echo("Warnings:")
        for warning in result.warnings:
            click.echo(f"  [{warning.rule}] {warning.message}")
    click.echo("Note:")
    click.echo(result.note, nl=False)


@main.command()
@click.argument("timed", nargs=-1, metavar="CODE=MINUTES...")
@click.option(
    "--request", "request_file", type=click.File("r"), help="JSON request file ('-' for stdin)."
)
@click.option("--json", "as_json", is_flag=True, help="Answer in the JSON contract.")
@click.option(
    "--method", type=click.Choice([m.value for m in Method]), default="cms", show_default=True
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
    no_assistant_modifiers: bool,
) -> None:
    """Turn minutes per code into units, modifiers, warnings and a note.

    \b
    therapy-timer units 97110=33 97140=7 --untimed 97161 --method cms --discipline PT
    therapy-timer units --request FILE --json      (FILE: one request or an array; '-' = stdin)
    """
    catalogue = context.catalogue()
    if request_file is not None:
        if timed or assistant or untimed:
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
    if date_of_service:
        data["date_of_service"] = date_of_service
    try:
        if as_json:
            click.echo(json.dumps(answer_json(data, catalogue), indent=2))
        else:
            _print_result(evaluate(request_from_json(data), catalogue))
    except TherapyTimerError as exc:
        _fail(exc)


def _answer_file(request_file: Any, catalogue: Catalogue, as_json: bool) -> None:
    try:
        payload = json.load(request_file)
    except json.JSONDecodeError as exc:
        raise BadInput(f"request: not valid JSON ({exc})") from None
    if isinstance(payload, list):
        answers = answer_batch(payload, catalogue)
        json.dump(answers, sys.stdout, indent=None if len(answers) > 1 else 2)
        sys.stdout.write("\n")
        if any("error" in a for a in answers):
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
