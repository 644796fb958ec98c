"""Copies of the database: backups on demand, the daily rotating backup, and restore."""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from therapy_timer.clock import Clock
from therapy_timer.errors import DatabaseCorrupt, InvalidInput, StorageUnavailable
from therapy_timer.files import (
    PARTIAL,
    SQLITE_COMPANIONS,
    fsync_dir,
    held_beside,
    held_temporary,
    open_here,
    remove_leftovers,
    same_file,
    written_beside,
)
from therapy_timer.paths import data_dir as default_data_dir
from therapy_timer.store._db import StoreBase, guarded, sqlite_primary, translated
from therapy_timer.store._files import (
    DB_FILENAME,
    backup_sort_key,
    backups_dir,
    database_path,
    list_backups,
    private_dir,
    private_file,
)
from therapy_timer.store.migrations import check_ours, prepare_schema, schema_differences

BACKUPS_KEPT = 14
_DAMAGED = (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)


class BackupsMixin(StoreBase):
    """``Store.backup`` and the daily rotating backup."""

    @guarded
    def backup(self, dest: Path | None = None) -> Path:
        """Copy the database with SQLite's backup API (0600) to ``dest`` or the backups folder."""
        target = _new_backup_path(self._data_dir, self._clock.now()) if dest is None else dest
        with translated(target, self._busy_timeout_ms):
            _copy_with_backup_api(self._conn, target)
        return target

    @guarded
    def daily_backup(self) -> Path | None:
        """Make today's backup unless there is one; keep the newest 14. None if already done.

        Checks integrity first: a damaged database must not push good backups out of the 14.
        Backups dated after the clock's now (``future_backups``) are neither today's backup nor
        counted among the 14, and never deleted here: one made while the clock read 2036 would
        otherwise sort newest forever, and every run would make a backup and rotate out a good one.
        """
        now = self._clock.now()
        # Every run of the app and of a command comes here first: a good moment to tidy.
        remove_leftovers_in(self._data_dir)
        try:
            dated = _backups_until(self._data_dir, now)
            today = now.astimezone().date()
            if dated and _backup_time(dated[-1]).astimezone().date() == today:
                return None
            self.check_integrity()
            made = self.backup()
            for old in _backups_until(self._data_dir, now)[:-BACKUPS_KEPT]:
                old.unlink(missing_ok=True)
        except DatabaseCorrupt:
            raise
        except (StorageUnavailable, OSError) as exc:
            # Said of the database ("cannot write to …sqlite3", "the last change was not
            # saved"), it was untrue: the copy failed, and a command's change was already kept.
            cause = exc.__cause__ or exc
            why = cause.strerror if isinstance(cause, OSError) and cause.strerror else cause
            raise StorageUnavailable(
                f"Today's backup could not be made in {backups_dir(self._data_dir)} ({why});"
                " nothing in the database was lost. Check that folder and the free space on its"
                " disk."
            ) from exc
        return made

    @guarded
    def future_backups(self) -> list[Path]:
        """Rotating backups dated after the clock's now, oldest first: made while the clock was
        wrong (or it is wrong now). Show them to a person; nothing here trusts or deletes them."""
        now = self._clock.now()
        return [p for p in list_backups(self._data_dir) if _backup_time(p) > now]


def _backups_until(data_dir: Path, now: datetime) -> list[Path]:
    """The rotating backups dated no later than ``now``, oldest first."""
    return [p for p in list_backups(data_dir) if _backup_time(p) <= now]


def _backup_time(path: Path) -> datetime:
    stamp, _ = backup_sort_key(path)
    return datetime.strptime(stamp, "%Y%m%d-%H%M%S").replace(tzinfo=UTC)


def _stamp(now: datetime) -> str:
    """``now`` in UTC as a backup name's YYYYMMDD-HHMMSS: the year always four digits (strftime
    writes year 1 as "1", a name no date is read back from, so every command made another)."""
    moment = now.astimezone(UTC)
    return f"{moment.year:04d}{moment:%m%d-%H%M%S}"


def _new_backup_path(data_dir: Path, now: datetime) -> Path:
    folder = backups_dir(data_dir)
    stamp = _stamp(now)
    candidate = folder / f"therapy-timer-{stamp}Z.sqlite3"
    n = 1
    while candidate.exists():
        n += 1
        candidate = folder / f"therapy-timer-{stamp}Z-{n}.sqlite3"
    return candidate


_COPIES = r"(?:therapy-timer|pre-restore)-.+\.sqlite3"
"""The names of the copies made in the backups folder (``_new_backup_path``, ``restore``)."""
_STAGING = ("restore-staging-", ".sqlite3")


def remove_leftovers_in(data_dir: Path) -> None:
    """Remove the temporary copies that a backup, a restore or a swap killed mid-write (kill -9,
    a power cut) left in the data folder and its backups folder; never one a live process of
    ours is writing (``files.held_temporary``). Older versions named them without a random part
    (NAME.partial, restore-staging-STAMP.sqlite3).
    """
    prefix, suffix = _STAGING
    remove_leftovers(
        backups_dir(data_dir),
        f"{written_beside(_COPIES)}|{_COPIES}{re.escape(PARTIAL)}"
        f"|{re.escape(prefix)}.+{re.escape(suffix)}",
    )
    name = re.escape(DB_FILENAME)
    remove_leftovers(data_dir, f"{written_beside(name)}|{name}{re.escape(PARTIAL)}")


def _copy_with_backup_api(
    source: sqlite3.Connection, dest: Path, *, stale: tuple[Path, ...] = ()
) -> None:
    """Write a consistent, self-contained (rollback-journal) copy of ``source`` to ``dest``;
    the ``stale`` files are removed just before the copy takes ``dest``'s name."""
    private_dir(dest.parent)
    with held_beside(dest) as partial:
        try:
            target = sqlite3.connect(partial, isolation_level=None)
            try:
                source.backup(target)
                # The copy would inherit WAL mode; a backup should be one file that opens
                # anywhere.
                target.execute("PRAGMA journal_mode=DELETE")
            finally:
                target.close()
            fd = os.open(partial, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            for path in stale:
                path.unlink(missing_ok=True)
            os.replace(partial, dest)
            fsync_dir(dest.parent)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise


# ---------------------------------------------------------------------------------------------
# Restore


def _corrupt_restore_source(file: Path, detail: str) -> DatabaseCorrupt:
    return DatabaseCorrupt(
        f"{file} is damaged ({detail}), so it was not restored. Choose another backup."
    )


def _validate_for_restore(staged: Path, source: Path) -> None:
    """Check the staged copy of ``source`` and bring it to this version's schema.

    Refuses a copy whose tables, indexes or triggers differ from what the migrations make: a
    file without the audit triggers would restore an editable audit log.
    """
    conn = sqlite3.connect(staged, isolation_level=None)
    try:
        result = conn.execute("PRAGMA quick_check").fetchone()
        if result is None or result[0] != "ok":
            raise _corrupt_restore_source(source, str(result[0] if result else "no answer"))
        applied = check_ours(conn, source)
        if "m001_initial" not in applied:
            raise DatabaseCorrupt(
                f"{source} is not a Therapy Timer database (it has none of our tables)."
            )
        prepare_schema(conn, source, read_only=False)
        problems = schema_differences(conn)
        if problems:
            raise DatabaseCorrupt(
                f"{source} was not restored: its tables, indexes or triggers are not the ones"
                f" Therapy Timer makes ({'; '.join(problems[:3])}), so it may have been edited."
                " Choose another backup."
            )
    finally:
        conn.close()


def restore(
    file: Path,
    *,
    data_dir: Path | None = None,
    clock: Clock,
    actor: str | None = None,
) -> Path | None:
    """Replace the database with ``file`` (validated first); returns the copy kept of the old one.

    Works when the current database is damaged (that is when it is needed most). Raises
    DatabaseCorrupt / DatabaseTooNew if ``file`` is not a Therapy Timer database we can read;
    then nothing is changed. An older schema is migrated after the restore. Returns None when
    there was no database to keep.
    """
    folder = default_data_dir(data_dir)
    db_path = database_path(folder)
    if not Path(file).is_file():
        raise InvalidInput("file", f"{file} does not exist or is not a file")
    if open_here(Path(file)) or same_file(Path(file), db_path):
        # Copying it would open and close a descriptor on a live database (lost locks).
        raise InvalidInput("file", f"{file} is a database in use, not a backup; choose a backup")
    wal = Path(f"{file}-wal")
    if open_here(wal):
        # Its -wal is copied with it: a name linked to a live database's file would be opened
        # and closed as well.
        raise InvalidInput(
            "file", f"{wal} is a file of a database in use, not a backup's; choose a backup"
        )
    now = clock.now()
    stamp = _stamp(now)
    with translated(db_path):
        private_dir(folder)
        private_dir(backups_dir(folder))
        remove_leftovers_in(folder)
        # Validate a private copy, so the source can neither change under us nor be modified
        # by opening it (a WAL-mode file gets -wal/-shm companions when opened).
        with held_temporary(backups_dir(folder), *_STAGING) as staged:
            try:
                shutil.copyfile(file, staged)
                if wal.is_file():
                    # A copy taken while the database was open: its last changes (all of it,
                    # for a new one) are in the -wal, which SQLite replays when the staged copy
                    # is opened.
                    private_file(Path(f"{staged}-wal"))
                    shutil.copyfile(wal, Path(f"{staged}-wal"))
                with translated(Path(file)):
                    try:
                        _validate_for_restore(staged, Path(file))
                    except sqlite3.DatabaseError as exc:
                        if sqlite_primary(exc) in _DAMAGED:
                            raise _corrupt_restore_source(Path(file), str(exc)) from exc
                        raise
                kept = _keep_current(db_path, backups_dir(folder) / f"pre-restore-{stamp}Z.sqlite3")
                _replace_database(staged, db_path)
            finally:
                # Its journals first: a clean-up cut short leaves the file that leads to them.
                for suffix in (*SQLITE_COMPANIONS, ""):
                    Path(f"{staged}{suffix}").unlink(missing_ok=True)
    # StoreBase, not Store: opening migrates an older backup; the audit entry is all we write.
    with StoreBase.open(folder, clock=clock, actor=actor) as store, store._write():
        store._audit(
            "database.restore",
            "database",
            DB_FILENAME,
            after={"source": str(file), "previous_copy": str(kept) if kept else None},
            reason=f"restored from {file}",
        )
    return kept


def _refuse_raw_access(db_path: Path) -> None:
    """Refuse to copy or swap the database's files while this process has it open."""
    if open_here(db_path):
        raise StorageUnavailable(
            f"The database {db_path} is too damaged to restore over while this program has it"
            " open; close every Therapy Timer window, then restore again."
        )


def _keep_current(db_path: Path, dest: Path) -> Path | None:
    if not db_path.exists() or db_path.stat().st_size == 0:
        return None
    try:
        conn = sqlite3.connect(db_path, isolation_level=None)
        try:
            _copy_with_backup_api(conn, dest)
        finally:
            conn.close()
    except sqlite3.DatabaseError:
        # Damaged beyond SQLite's reading: keep the raw bytes (and any -wal) for forensics.
        _refuse_raw_access(db_path)
        private_file(dest)
        shutil.copyfile(db_path, dest)
        wal = Path(f"{db_path}-wal")
        if wal.exists():
            private_file(Path(f"{dest}-wal"))
            shutil.copyfile(wal, Path(f"{dest}-wal"))
    return dest


def _replace_database(staged: Path, db_path: Path) -> None:
    source = sqlite3.connect(staged, isolation_level=None)
    try:
        try:
            # The backup API writes into the live file under SQLite's locks, so any other
            # connection sees the restored data instead of an unlinked file. A new file is
            # made private by the umask: no descriptor of ours may touch the live file.
            umask = os.umask(0o077)
            try:
                target = sqlite3.connect(db_path, isolation_level=None, timeout=5.0)
            finally:
                os.umask(umask)
            try:
                target.execute("PRAGMA journal_mode=WAL")
                source.backup(target)
            finally:
                target.close()
            return
        except sqlite3.DatabaseError as exc:
            if sqlite_primary(exc) not in _DAMAGED:
                raise
        # The current file is too damaged to write into: swap files. Its -wal must go too,
        # or SQLite would replay stale frames onto the restored database.
        _refuse_raw_access(db_path)
        stale = tuple(Path(f"{db_path}{suffix}") for suffix in ("-wal", "-shm"))
        _copy_with_backup_api(source, db_path, stale=stale)
    finally:
        source.close()
