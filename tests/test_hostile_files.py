"""The data folder's own files when something else wrote them or stands in their place: one plain
message or the answer as if they were absent, never a traceback, and never written over."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest

from tests.test_cli_sessions import Cli, treated
from therapy_timer import store as st
from therapy_timer.clinic import SERVER_DSN_SETTING, SYNC_STATE_FILE

UNREACHABLE = "host=127.0.0.1 port=1 dbname=clinic user=ws_room1 connect_timeout=2"
"""A server nothing answers for (a closed port on this machine): status reports offline."""


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return treated(tmp_path / "data")


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


@pytest.mark.parametrize(
    "state",
    [
        '{"workstation": "ws_room1", "pushed_audit_id": "x", "last_sync_utc": null}',
        '{"workstation": "ws_room1", "pushed_audit_id": 3, "last_sync_utc": "yesterday"}',
        '{"workstation": "ws_room1", "pushed_audit_id": 3, "last_sync_utc": 5}',
        '{"workstation": "ws_room1", "pushed_audit_id": "\\u0665", "last_sync_utc": null}',
        '{"workstation": "ws_room1", "pushed_audit_id": true, "last_sync_utc": null}',
        '{"workstation": "ws_room1", "pushed_audit_id": 3, "last_sync_utc": "2026-01-01T09:00"}',
        '{"workstation": ["ws_room1"], "pushed_audit_id": 3, "last_sync_utc": null}',
        '["ws_room1", 3]',
        '{"workstation": "ws_room1"',
        "[" * 5000 + "]" * 5000,
        "FIFO",
    ],
)
def test_a_damaged_last_sync_record_counts_as_never_synced(cli: Cli, state: str) -> None:
    """The record is a copy of the server's mark for when it cannot be reached; values no sync
    writes were a ValueError traceback in clinic status, and a pipe in its place hung it."""
    with st.Store.open(cli.data_dir, clock=cli.clock) as store:
        store.set_setting(SERVER_DSN_SETTING, UNREACHABLE)
    target = cli.data_dir / SYNC_STATE_FILE
    if state == "FIFO":
        os.mkfifo(target)
    else:
        target.write_text(state)
    shown = cli("clinic", "status", "--json").stdout
    status = cli.json("clinic", "status", "--json")
    assert not status["reachable"], shown
    assert status["last_sync_utc"] is None
    assert status["pending_sessions"] == 1


LAST = "2026-01-01T09:00:00+00:00"


def test_a_whole_last_sync_record_is_shown_offline(cli: Cli) -> None:
    """The check above refuses only what sync_server never writes."""
    with st.Store.open(cli.data_dir, clock=cli.clock) as store:
        store.set_setting(SERVER_DSN_SETTING, UNREACHABLE)
        mark = max(e.id for e in store.audit_entries())
    record = {"workstation": "ws_room1", "pushed_audit_id": mark, "last_sync_utc": LAST}
    (cli.data_dir / SYNC_STATE_FILE).write_text(json.dumps(record))
    status = cli.json("clinic", "status", "--json")
    assert status["last_sync_utc"] == LAST
    assert status["pending_sessions"] == 0


def test_a_last_sync_record_holding_many_held_sessions_is_read(cli: Cli) -> None:
    """Each session a push holds back is listed in the record (36115b3), so 2,000 of them
    (a large bundle merged from an older version) passed its 64 KiB limit for ~150 bytes:
    the record counted as never synced and its held sessions as none."""
    with st.Store.open(cli.data_dir, clock=cli.clock) as store:
        store.set_setting(SERVER_DSN_SETTING, UNREACHABLE)
        mark = max(e.id for e in store.audit_entries())
    held = [str(uuid.UUID(int=n)) for n in range(2000)]
    record = {"workstation": "ws_room1", "pushed_audit_id": mark, "last_sync_utc": LAST}
    (cli.data_dir / SYNC_STATE_FILE).write_text(json.dumps({**record, "held": held}))
    status = cli.json("clinic", "status", "--json")
    assert status["last_sync_utc"] == LAST
    assert status["held_on_this_workstation"] == held


def test_a_file_named_with_underscores_is_named_as_it_is(cli: Cli, tmp_path: Path) -> None:
    """The field's underscores became spaces for the store's names ('start_utc'), and a file's
    too: 'my_room_2.json' was reported as 'my room 2.json', a file nobody has."""
    folder = tmp_path / "front_desk"
    folder.mkdir()
    bundle = folder / "my_room_2.json"
    bundle.write_text("not json")
    error = cli("import", str(bundle), status=2).stderr
    assert f"{bundle}: is not a bundle" in error
    day = cli.clock.now().astimezone().date().isoformat()
    cli("export", "--date", day, "--format", "bundle", "--out", str(bundle), "--force")
    record = json.loads(bundle.read_text())
    record["sessions"][0]["created_utc"] = "yesterday"
    bundle.write_text(json.dumps(record))
    error = cli("import", str(bundle), status=2).stderr
    assert f"{bundle}: session 1 created utc" in error


def test_the_database_given_to_import_is_refused_unread(cli: Cli, tmp_path: Path) -> None:
    """It was opened and read as a bundle while this process had it open in SQLite: closing
    that descriptor drops SQLite's locks (house style), before it said 'not UTF-8 text'."""
    database = cli.data_dir / "therapy-timer.sqlite3"
    link = tmp_path / "room2.json"
    link.symlink_to(database)
    for named in (database, link):
        error = cli("import", str(named), status=2).stderr
        assert f"{named}: is the Therapy Timer database or its journal" in error
