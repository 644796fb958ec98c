"""Connecting to the clinic server with libpq's own credentials, and its errors in plain words."""

from __future__ import annotations

import configparser
import ipaddress
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from therapy_timer.errors import InvalidInput, StorageUnavailable

# Timers never wait on the network: a server that does not answer is given up on quickly.
CONNECT_TIMEOUT_S = 5

# A network that drops under an open connection leaves libpq waiting for an answer until the
# operating system's keepalive gives up (over two hours on Linux): a cron sync hung, and the
# window's sync round never ended, so it neither synced again nor said the server was away.
# Probes after 10 s of silence, and 20 s of unanswered sending, give up in well under a
# minute; a long query whose server still answers probes is not cut short. Systems without
# the count or the send timeout ignore them (libpq's documentation).
_DEAD_PEER = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 20_000,
}

# The server answered and refused the login (libpq's and PostgreSQL's English words; in
# another language the login is said to be unreachable, as any failure to connect).
_LOGIN_REFUSED = re.compile(
    r"password authentication failed|no password supplied|no pg_hba\.conf entry"
    r"|is not permitted to log in"
    r'|FATAL:\s+(role|database) "[^"]*" does not exist'
)

# Keys of a connection string that carry a secret: never remembered, never printed.
_SECRET_KEYS = ("password", "sslpassword")


class ServerUnavailable(StorageUnavailable):
    """The clinic server cannot be reached (down, network cut, refused login)."""


class ServerRefused(StorageUnavailable):
    """The server answered but refused (missing grants, a role that may not do this)."""


class ServerVersionError(StorageUnavailable):
    """The server's schema is older than this app and this role may not upgrade it, or newer."""


OLDER_SERVER = (
    "the clinic server's schema is older than this app; whoever set up the server runs"
    " `therapy-timer clinic init-server` (or `clinic connect` as its administrator) to"
    " upgrade it (docs/clinic-server.md)"
)


class ServerRecordsRefused(StorageUnavailable):
    """The server holds session records the desk cannot bill as a workstation sent them."""


# A password in a URI's user part (postgresql://user:SECRET@host) or a key=value pair.
_URI_SECRET = re.compile(r"(?i)(postgres(?:ql)?://[^:@/\s\"]*):[^@\s\"]*@")
_KEY_SECRET = re.compile(r"(?i)\b((?:ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)")


def scrubbed(text: str) -> str:
    """``text`` with any password it quotes replaced by ***: libpq's messages quote the
    connection string they could not parse, a URI's password included."""
    return _KEY_SECRET.sub(r"\1***", _URI_SECRET.sub(r"\1:***@", text))


DSN_EXAMPLE = "postgresql://ROLE@HOST/DATABASE"


def _parsed(dsn: str) -> dict[str, Any]:
    # libpq reads an empty string as "this machine, my login" and stops reading at a NUL
    # ("host=db\0.example" would reach host db): neither is the server the user meant.
    if not dsn.strip():
        raise InvalidInput("DSN", f"type the clinic server's address, like {DSN_EXAMPLE}")
    if any(ord(ch) < 32 and ch not in " \t" for ch in dsn):
        raise InvalidInput("DSN", "a connection string is one line without control characters")
    try:
        params = dict(conninfo_to_dict(dsn))
    except psycopg.ProgrammingError as exc:
        # libpq's message quotes the string, which may hold a password: say only what is wrong.
        first = str(exc).splitlines()[0] if str(exc) else "not a connection string"
        if "password" in dsn.lower():
            first = "not a valid connection string"
        first = scrubbed(first)
        raise InvalidInput("DSN", first if len(first) <= 120 else f"{first[:117]}...") from None
    # libpq ends a URI's password at its first @, so the rest of a password holding one
    # became the host, which the connection's error then quoted.
    if any("@" in str(params.get(key, "")) for key in ("host", "hostaddr")):
        raise InvalidInput(
            "DSN",
            "a host name holds no @: write an @ of the password as %40, or better keep the"
            " password in ~/.pgpass",
        )
    return params


def password_free(dsn: str) -> str:
    """The DSN without its password (libpq finds it in ~/.pgpass or a service file)."""
    params = {k: v for k, v in _parsed(dsn).items() if k not in _SECRET_KEYS}
    return make_conninfo("", **params)


def has_password(dsn: str) -> bool:
    return any(k in _parsed(dsn) for k in _SECRET_KEYS)


def _local(host: str) -> bool:
    """Whether libpq reaches ``host`` without the network: a Unix socket or a loopback name."""
    if not host or host.startswith(("/", "@")) or host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: whatever it resolves to today, it is another computer's


def _service(params: dict[str, Any]) -> dict[str, str]:
    """The settings of the service file section the address names (``service=clinic``, as
    docs/clinic-server.md advises), read as libpq reads them: the user's file, else the
    system's; empty when there is none to read."""
    name = params.get("service") or os.environ.get("PGSERVICE")
    if not name:
        return {}
    files = [Path(os.environ.get("PGSERVICEFILE") or Path.home() / ".pg_service.conf")]
    if os.environ.get("PGSYSCONFDIR"):
        files.append(Path(os.environ["PGSYSCONFDIR"]) / "pg_service.conf")
    for file in files:
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read(file, encoding="utf-8")
        except (OSError, UnicodeError, configparser.Error):
            continue
        if parser.has_section(str(name)):
            return dict(parser[str(name)])
    return {}


def tls_warning(dsn: str) -> str:
    """A plain warning when patient data would cross the network to a server whose identity
    libpq does not check (sslmode weaker than verify-full), else ''. The connection is still
    made: a clinic's private network may be its choice. Names the host and sslmode only."""
    params = {**_service(_parsed(dsn)), **_parsed(dsn)}
    hosts = [
        h.strip()
        for key, env in (("host", "PGHOST"), ("hostaddr", "PGHOSTADDR"))
        for h in str(params.get(key) or os.environ.get(env, "")).split(",")
    ]
    remote = [h for h in hosts if not _local(h)]
    mode = str(params.get("sslmode") or os.environ.get("PGSSLMODE") or "prefer")
    if not remote or mode == "verify-full":
        return ""
    fix = (
        "add sslmode=verify-full and sslrootcert=PATH (the clinic's root certificate) to the"
        " address (docs/clinic-server.md, section 4)"
    )
    if mode == "verify-ca":
        return (
            f"note: sslmode=verify-ca checks that {remote[0]}'s certificate was signed by the"
            " clinic's root certificate, not that it was issued to that host name; to check"
            f" both, {fix.replace('add sslmode', 'use sslmode')}"
        )
    return (
        f"warning: {remote[0]} is not this computer and sslmode={mode} does not check the"
        " server's identity: patient data would cross the network to whoever answers at that"
        f" address; to fix it, {fix}"
    )


def connect(dsn: str) -> psycopg.Connection[tuple[Any, ...]]:
    """A connection (autocommit off) or ServerUnavailable naming the server, never the password."""
    params = _parsed(dsn)
    params.setdefault("connect_timeout", CONNECT_TIMEOUT_S)
    params.setdefault("application_name", "therapy-timer")
    for key, value in _DEAD_PEER.items():
        params.setdefault(key, value)
    try:
        conn = psycopg.connect(make_conninfo("", **params))
    except psycopg.OperationalError as exc:
        said = first_line(exc)
        if _LOGIN_REFUSED.search(said):
            hint = "; the role's password goes in ~/.pgpass, readable by you alone (chmod 600),"
            hint += " or in a service file"
            raise ServerRefused(
                f"the clinic server refused the login: {said}{hint * ('password' in said)}"
            ) from None
        raise ServerUnavailable(f"the clinic server cannot be reached: {said}") from None
    # psycopg reads dates and times only in ISO style, and a server (or PGDATESTYLE) set to
    # another one, e.g. 'SQL, DMY', failed every command with a traceback.
    try:
        with conn.transaction():
            conn.execute("SET DateStyle TO ISO, MDY")
    except psycopg.OperationalError as exc:  # the server went away as it let us in
        conn.close()
        raise ServerUnavailable(f"the clinic server cannot be reached: {first_line(exc)}") from None
    return conn


def first_line(exc: BaseException) -> str:
    """An error's first line, any password it quotes scrubbed."""
    text = str(exc).strip()
    return scrubbed(text.splitlines()[0].strip()) if text else type(exc).__name__


@contextmanager
def answering() -> Iterator[None]:
    """A server that goes away mid-read or mid-mark (stopped, the network cut), or that lacks
    a function of this app's schema (not upgraded yet), is said in plain words, not as
    psycopg's traceback."""
    try:
        yield
    except psycopg.errors.UndefinedFunction:
        raise ServerVersionError(OLDER_SERVER) from None
    except psycopg.OperationalError as exc:
        raise ServerUnavailable(
            f"the connection to the clinic server was lost ({first_line(exc)}); try again once"
            " it is back"
        ) from None
