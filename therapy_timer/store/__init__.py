"""Durable storage of sessions, segments and the audit trail (the only package touching SQLite).

``Store`` is composed of one part per job, all sharing ``StoreBase``'s connection:

- ``_db``: opening, write transactions, the audit insert, environment errors in plain words;
- ``_files``: the data folder's file names, private modes and the list of backups;
- ``migrations``: the schema, append-only;
- ``queries`` / ``writes``: reading and changing sessions, segments, services, settings, payers;
- ``bundles``: closed sessions as plain records, and merging other workstations' records;
- ``backups``: backups, the daily rotating backup, and ``restore``.
"""

from __future__ import annotations

from therapy_timer.model import (
    PATIENT_REF_MAX,
    AuditEntry,
    PayerProfile,
    Segment,
    Session,
    SessionStatus,
    UntimedService,
)
from therapy_timer.store._db import StoreBase
from therapy_timer.store._files import (
    BACKUP_DIRNAME,
    DB_FILENAME,
    backups_dir,
    database_path,
    latest_backup,
    list_backups,
)
from therapy_timer.store.backups import BACKUPS_KEPT, BackupsMixin, restore
from therapy_timer.store.bundles import (
    BundlesMixin,
    ImportOutcome,
    RecordBatch,
    version_hash,
)
from therapy_timer.store.migrations import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION
from therapy_timer.store.writes import (
    KEEP,
    WritesMixin,
)

__all__ = [
    "APPLICATION_ID",
    "BACKUPS_KEPT",
    "BACKUP_DIRNAME",
    "DB_FILENAME",
    "KEEP",
    "MIGRATIONS",
    "PATIENT_REF_MAX",
    "SCHEMA_VERSION",
    "AuditEntry",
    "ImportOutcome",
    "PayerProfile",
    "RecordBatch",
    "Segment",
    "Session",
    "SessionStatus",
    "Store",
    "UntimedService",
    "backups_dir",
    "database_path",
    "latest_backup",
    "list_backups",
    "restore",
    "version_hash",
]


class Store(BundlesMixin, WritesMixin, BackupsMixin, StoreBase):
    """An open Therapy Timer database. Every mutating method commits before it returns.

    Errors caused by the environment (damaged, newer, read-only, locked file, full disk) raise the
    ``StorageUnavailable`` family; anything else is a bug and propagates unchanged.
    """
