"""The clinic server: the only package that talks to PostgreSQL (psycopg 3).

- ``connection``: connecting with libpq's own credentials, DSNs without passwords, errors
- ``migrations``: the server schema, created and upgraded by append-only migrations
- ``roles``: ``init_server``: the desk and workstation roles and what each may do
- ``sync``: pushing a workstation's closed sessions, audit entries and running state
- ``local``: reading the workstation's own store for a push
- ``background``: a thread that pushes every few seconds, never blocking the window
- ``desk``: what the front desk reads: every station's last sync, the clinic's sessions
"""

from therapy_timer.server.background import BackgroundSync
from therapy_timer.server.connection import (
    ServerRecordsRefused,
    ServerRefused,
    ServerUnavailable,
    ServerVersionError,
    connect,
    has_password,
    password_free,
    tls_warning,
)
from therapy_timer.server.desk import (
    REFUSED,
    DayKey,
    KeptAside,
    ServerStatus,
    WorkstationState,
    clinic_records,
    kept_aside,
    mark_exported,
    pushed_mark,
    session_records,
    settle,
    stream_clinic_records,
    workstations,
)
from therapy_timer.server.local import StoreReader, StoreRecords, pending
from therapy_timer.server.migrations import (
    DESK_GROUP,
    LATEST_VERSION,
    WORKSTATION_GROUP,
    schema_version,
    upgrade,
)
from therapy_timer.server.roles import Connected, init_server, probe
from therapy_timer.server.sync import (
    MAX_RECORD_BYTES,
    MAX_SEGMENTS,
    MAX_UNTIMED,
    LocalRecords,
    SyncReport,
    clock_skew,
    content_hash,
    entry_hash,
    push,
    skew_message,
)

__all__ = [
    "DESK_GROUP",
    "LATEST_VERSION",
    "MAX_RECORD_BYTES",
    "MAX_SEGMENTS",
    "MAX_UNTIMED",
    "REFUSED",
    "WORKSTATION_GROUP",
    "BackgroundSync",
    "Connected",
    "DayKey",
    "KeptAside",
    "LocalRecords",
    "ServerRecordsRefused",
    "ServerRefused",
    "ServerStatus",
    "ServerUnavailable",
    "ServerVersionError",
    "StoreReader",
    "StoreRecords",
    "SyncReport",
    "WorkstationState",
    "clinic_records",
    "clock_skew",
    "connect",
    "content_hash",
    "entry_hash",
    "has_password",
    "init_server",
    "kept_aside",
    "mark_exported",
    "password_free",
    "pending",
    "probe",
    "push",
    "pushed_mark",
    "schema_version",
    "session_records",
    "settle",
    "skew_message",
    "stream_clinic_records",
    "tls_warning",
    "upgrade",
    "workstations",
]
