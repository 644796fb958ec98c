"""Setting the server up: the desk and workstation roles, and what a connecting role may do."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from therapy_timer.errors import InvalidInput
from therapy_timer.server.connection import (
    ServerRefused,
    ServerVersionError,
    answering,
    connect,
)
from therapy_timer.server.migrations import (
    DESK_GROUP,
    LATEST_VERSION,
    WORKSTATION_GROUP,
    schema_version,
    upgrade,
)

_ROLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


@dataclass(frozen=True)
class Connected:
    """What ``probe`` found: who we are on the server and what the schema was and is."""

    role: str
    superuser: bool
    is_workstation: bool
    is_desk: bool
    version_before: int | None
    version: int
    applied: tuple[str, ...]
    clinic_id: str


def _role_name(name: str, field: str) -> str:
    if not _ROLE_NAME.fullmatch(name):
        raise InvalidInput(
            field, f"{name!r} is not a role name: lower-case letters, digits and _ (max. 63)"
        )
    return name


def _ensure_role(conn: psycopg.Connection[tuple[Any, ...]], name: str, *, login: bool) -> None:
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [name]).fetchone()
    if exists is None:
        # No password here: the administrator sets one with \password, or uses certificates.
        kind = sql.SQL("LOGIN") if login else sql.SQL("NOLOGIN")
        conn.execute(sql.SQL("CREATE ROLE {} {}").format(sql.Identifier(name), kind))


def init_server(
    dsn: str, *, workstations: Sequence[str] = (), desks: Sequence[str] = ()
) -> Connected:
    """Create the group roles, the schema and the named login roles (as an administrator).

    Running it again is harmless: existing roles are kept and only missing grants are added.
    """
    stations = [_role_name(n, "--workstation") for n in workstations]
    front = [_role_name(n, "--desk") for n in desks]
    if set(stations) & set(front):
        raise InvalidInput("--desk", "a role cannot be both a workstation and the desk")
    with connect(dsn) as conn, answering():
        try:
            with conn.transaction():
                _ensure_role(conn, WORKSTATION_GROUP, login=False)
                _ensure_role(conn, DESK_GROUP, login=False)
                for name, group in [(n, WORKSTATION_GROUP) for n in stations] + [
                    (n, DESK_GROUP) for n in front
                ]:
                    _ensure_role(conn, name, login=True)
                    conn.execute(
                        sql.SQL("GRANT {} TO {}").format(
                            sql.Identifier(group), sql.Identifier(name)
                        )
                    )
        except psycopg.errors.InsufficientPrivilege:
            raise ServerRefused(
                "this role may not create roles; run init-server as the server's administrator"
                " (a superuser or a role with CREATEROLE that owns the database)"
            ) from None
    return probe(dsn)


def probe(dsn: str) -> Connected:
    """Connect, upgrade the schema if this role may, and say who we are there.

    ServerVersionError when the schema is missing or older and this role may not upgrade it;
    ServerRefused when this role has no grants on it at all.
    """
    try:
        with answering():
            return _probe(dsn)
    except psycopg.errors.InsufficientPrivilege as exc:
        raise ServerRefused(
            f"the clinic server refused this role ({exc.diag.message_primary}); the"
            " administrator adds it with `clinic init-server --workstation ROLE` (or --desk)"
        ) from None


def _probe(dsn: str) -> Connected:
    with connect(dsn) as conn:
        before = schema_version(conn)
        applied: list[str] = []
        if before is None or before < LATEST_VERSION:
            try:
                applied = upgrade(conn)
            except ServerRefused as exc:
                have = "no Therapy Timer schema" if before is None else f"version {before}"
                raise ServerVersionError(
                    f"the clinic server has {have} and this app needs version {LATEST_VERSION}:"
                    f" {exc}"
                ) from None
        elif before > LATEST_VERSION:
            upgrade(conn)  # raises the plain "newer than this app" error
        with conn.transaction():
            row = conn.execute(
                "SELECT current_user, rolsuper,"
                " pg_has_role(current_user, %s, 'MEMBER') AND NOT rolsuper,"
                " pg_has_role(current_user, %s, 'MEMBER') AND NOT rolsuper,"
                " (SELECT id::text FROM therapy_timer.clinic)"
                " FROM pg_roles WHERE rolname = current_user",
                [WORKSTATION_GROUP, DESK_GROUP],
            ).fetchone()
        assert row is not None
    return Connected(
        role=str(row[0]),
        superuser=bool(row[1]),
        is_workstation=bool(row[2]),
        is_desk=bool(row[3]),
        version_before=before,
        version=LATEST_VERSION,
        applied=tuple(applied),
        clinic_id=str(row[4]),
    )
