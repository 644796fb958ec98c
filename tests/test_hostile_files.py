"""The data folder's own files when something else wrote them or stands in their place: one plain
message or the answer as if they were absent, never a traceback, and never written over."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_cli_sessions import Cli
from therapy_timer.clinic import SYNC_STATE_FILE


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    cli = Cli(tmp_path / "data")
    cli("timer", "start", "97110", "--patient", "JD")
    cli.clock.advance(minutes=23)
    cli("session", "end")
    return cli


def test_an_export_never_replaces_the_last_sync_record(cli: Cli, tmp_path: Path) -> None:
    """clinic-sync.json is the clinic's own file like codes.toml: --force wrote a CSV over it."""
    target = cli.data_dir / SYNC_STATE_FILE
    target.write_text('{"workstation": "ws_room1", "pushed_audit_id": 3, "last_sync_utc": null}')
    before = target.read_bytes()
    day = cli.clock.now().astimezone().date().isoformat()
    for command in (
        ["export", "--date", day, "--out", str(target), "--force"],
        ["export", "--date", day, "--format", "bundle", "--out", str(target), "--force"],
        ["backup", "--to", str(target), "--force"],
    ):
        assert "one of Therapy Timer's own files" in cli(*command, status=2).stderr
    assert target.read_bytes() == before
