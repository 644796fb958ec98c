"""The ``therapy-timer`` command: thin click commands over the library modules."""

from __future__ import annotations

import click

from therapy_timer import __version__


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="therapy-timer")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Per-code treatment stopwatches and billing-correct units for PT, OT and SLP."""
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())
