"""The server schema: append-only migrations recorded in a version table, applied under a lock."""

from __future__ import annotations

from typing import Any

import psycopg

from therapy_timer.server.connection import ServerRefused, ServerVersionError

SCHEMA = "therapy_timer"
WORKSTATION_GROUP = "therapy_timer_workstation"
DESK_GROUP = "therapy_timer_desk"

# Append-only: never edit a migration that has shipped, add the next one. Each is one SQL
# script run in the upgrade's transaction (PostgreSQL's DDL is transactional: all or nothing).

_M001_TABLES = """
CREATE TABLE therapy_timer.clinic (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    only_one boolean NOT NULL UNIQUE DEFAULT true CHECK (only_one),
    created_utc timestamptz NOT NULL DEFAULT now()
);
INSERT INTO therapy_timer.clinic DEFAULT VALUES;

-- A workstation is the PostgreSQL role it logs in as: the server, not the app, says who it is.
CREATE TABLE therapy_timer.workstations (
    name text PRIMARY KEY DEFAULT current_user,
    last_sync_utc timestamptz,
    heartbeat_utc timestamptz,
    running jsonb NOT NULL DEFAULT '[]',
    pushed_audit_id bigint NOT NULL DEFAULT 0,
    pushed_audit_hash text
);

CREATE TABLE therapy_timer.sessions (
    id uuid PRIMARY KEY,
    workstation text NOT NULL DEFAULT current_user,
    date_of_service date NOT NULL,
    patient_ref text NOT NULL,
    clinician text NOT NULL,
    role text NOT NULL,
    discipline text NOT NULL,
    payer_profile text NOT NULL,
    amended boolean NOT NULL,
    created_utc timestamptz NOT NULL,
    closed_utc timestamptz,
    content_hash text NOT NULL,
    record jsonb NOT NULL,
    exported boolean NOT NULL DEFAULT false,
    pushed_utc timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sessions_by_day ON therapy_timer.sessions (date_of_service, patient_ref);
CREATE INDEX sessions_by_workstation ON therapy_timer.sessions (workstation);

CREATE TABLE therapy_timer.segments (
    id uuid PRIMARY KEY,
    session_id uuid NOT NULL REFERENCES therapy_timer.sessions (id),
    workstation text NOT NULL DEFAULT current_user,
    code text NOT NULL,
    furnished_by text NOT NULL,
    exclusive boolean NOT NULL,
    start_utc timestamptz NOT NULL,
    stop_utc timestamptz NOT NULL CHECK (stop_utc >= start_utc)
);
CREATE INDEX segments_by_session ON therapy_timer.segments (session_id);

CREATE TABLE therapy_timer.untimed (
    session_id uuid NOT NULL REFERENCES therapy_timer.sessions (id),
    position integer NOT NULL,
    workstation text NOT NULL DEFAULT current_user,
    code text NOT NULL,
    minutes integer,
    furnished_by text NOT NULL,
    created_utc timestamptz NOT NULL,
    PRIMARY KEY (session_id, position)
);

-- Each workstation's own audit log, entry by entry, under the id it has there.
CREATE TABLE therapy_timer.audit (
    workstation text NOT NULL DEFAULT current_user,
    local_id bigint NOT NULL,
    session_id uuid,
    at_utc timestamptz NOT NULL,
    actor text NOT NULL,
    action text NOT NULL,
    entity text NOT NULL,
    entity_id text NOT NULL,
    before jsonb,
    after jsonb,
    reason text NOT NULL DEFAULT '',
    entry_hash text NOT NULL,
    PRIMARY KEY (workstation, local_id)
);
CREATE INDEX audit_by_session ON therapy_timer.audit (session_id);

-- What the server did on its own account: conflicts kept aside, days marked exported.
CREATE TABLE therapy_timer.events (
    id bigserial PRIMARY KEY,
    at_utc timestamptz NOT NULL DEFAULT now(),
    actor text NOT NULL DEFAULT session_user,
    action text NOT NULL,
    entity text NOT NULL,
    entity_id text NOT NULL,
    details jsonb
);

-- A copy that may not overwrite what the server holds: kept for the desk to accept or drop.
CREATE TABLE therapy_timer.conflicts (
    id bigserial PRIMARY KEY,
    workstation text NOT NULL DEFAULT current_user,
    session_id uuid NOT NULL,
    content_hash text NOT NULL,
    received_utc timestamptz NOT NULL DEFAULT now(),
    why text NOT NULL,
    record jsonb NOT NULL,
    resolved_utc timestamptz,
    resolution text CHECK (resolution IN ('accepted', 'dropped')),
    UNIQUE (workstation, session_id, content_hash)
);

-- Audit entries and the server's events are append-only for everyone, the tables' owner too.
CREATE FUNCTION therapy_timer.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: entries cannot be changed or deleted', TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON therapy_timer.audit
    FOR EACH ROW EXECUTE FUNCTION therapy_timer.refuse_change();
CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON therapy_timer.events
    FOR EACH ROW EXECUTE FUNCTION therapy_timer.refuse_change();
"""

# Each table and the column naming the workstation a row belongs to.
_OWN_TABLES = (
    ("sessions", "workstation"),
    ("segments", "workstation"),
    ("untimed", "workstation"),
    ("audit", "workstation"),
    ("conflicts", "workstation"),
    ("workstations", "name"),
)

_M002_LEAST_PRIVILEGE = f"""
REVOKE ALL ON ALL TABLES IN SCHEMA therapy_timer FROM PUBLIC;
GRANT USAGE ON SCHEMA therapy_timer TO {WORKSTATION_GROUP}, {DESK_GROUP};
GRANT SELECT ON therapy_timer.clinic, therapy_timer.schema_version
    TO {WORKSTATION_GROUP}, {DESK_GROUP};

-- A workstation adds and amends its sessions; the exported flag is the desk's.
GRANT SELECT, INSERT ON therapy_timer.sessions TO {WORKSTATION_GROUP};
GRANT UPDATE (date_of_service, patient_ref, clinician, role, discipline, payer_profile, amended,
              created_utc, closed_utc, content_hash, record, pushed_utc)
    ON therapy_timer.sessions TO {WORKSTATION_GROUP};
GRANT SELECT, INSERT, DELETE ON therapy_timer.segments, therapy_timer.untimed
    TO {WORKSTATION_GROUP};
GRANT SELECT, INSERT ON therapy_timer.audit, therapy_timer.conflicts TO {WORKSTATION_GROUP};
GRANT SELECT, INSERT, UPDATE ON therapy_timer.workstations TO {WORKSTATION_GROUP};
GRANT INSERT ON therapy_timer.events TO {WORKSTATION_GROUP};
GRANT USAGE ON SEQUENCE therapy_timer.events_id_seq, therapy_timer.conflicts_id_seq
    TO {WORKSTATION_GROUP}, {DESK_GROUP};

-- The desk reads everything, marks sessions exported and settles conflicts.
GRANT SELECT ON ALL TABLES IN SCHEMA therapy_timer TO {DESK_GROUP};
GRANT UPDATE (exported) ON therapy_timer.sessions TO {DESK_GROUP};
GRANT UPDATE (resolved_utc, resolution) ON therapy_timer.conflicts TO {DESK_GROUP};
GRANT INSERT ON therapy_timer.events TO {DESK_GROUP};

ALTER TABLE therapy_timer.events ENABLE ROW LEVEL SECURITY;
CREATE POLICY anyone_adds ON therapy_timer.events FOR INSERT
    TO {WORKSTATION_GROUP}, {DESK_GROUP} WITH CHECK (actor = session_user);
CREATE POLICY desk_reads ON therapy_timer.events FOR SELECT TO {DESK_GROUP} USING (true);
CREATE POLICY desk_marks ON therapy_timer.sessions FOR UPDATE TO {DESK_GROUP} USING (true);
CREATE POLICY desk_settles ON therapy_timer.conflicts FOR UPDATE TO {DESK_GROUP} USING (true);

-- Whether a session id is already held for another workstation, and with which content:
-- enough to tell a copy (an imported bundle) from a conflict without reading its rows.
CREATE FUNCTION therapy_timer.held_elsewhere(wanted uuid)
    RETURNS TABLE (workstation text, content_hash text)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT workstation, content_hash FROM therapy_timer.sessions WHERE id = wanted
$$;
REVOKE ALL ON FUNCTION therapy_timer.held_elsewhere(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION therapy_timer.held_elsewhere(uuid) TO {WORKSTATION_GROUP};
""" + "".join(
    f"""
ALTER TABLE therapy_timer.{table} ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_rows ON therapy_timer.{table} FOR ALL TO {WORKSTATION_GROUP}
    USING ({owner} = current_user) WITH CHECK ({owner} = current_user);
CREATE POLICY desk_reads ON therapy_timer.{table} FOR SELECT TO {DESK_GROUP} USING (true);
"""
    for table, owner in _OWN_TABLES
)

# The desk settles a kept-aside version without any right to write sessions itself: this
# function checks that the caller is the desk, keeps the version it replaces as a settled
# conflict (nothing is ever lost), and records the decision in the server's events.
_M003_SETTLE_CONFLICTS = f"""
CREATE FUNCTION therapy_timer.settle_conflict(wanted bigint, decision text, why text)
    RETURNS text LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    c therapy_timer.conflicts;
BEGIN
    IF NOT pg_has_role(session_user, '{DESK_GROUP}', 'MEMBER') THEN
        RAISE EXCEPTION 'only the desk settles conflicts' USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF decision NOT IN ('accepted', 'dropped') THEN
        RAISE EXCEPTION 'a conflict is accepted or dropped, not %', decision
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF coalesce(btrim(why), '') = '' THEN
        RAISE EXCEPTION 'settling a conflict needs a reason'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT * INTO c FROM therapy_timer.conflicts WHERE id = wanted FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'there is no kept-aside version %', wanted USING ERRCODE = 'no_data_found';
    END IF;
    IF c.resolved_utc IS NOT NULL THEN
        RAISE EXCEPTION 'kept-aside version % was already %', wanted, c.resolution
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF decision = 'accepted' THEN
        INSERT INTO therapy_timer.conflicts
            (workstation, session_id, content_hash, why, record, resolved_utc, resolution)
        SELECT s.workstation, s.id, s.content_hash,
               'replaced at the desk by kept-aside version ' || wanted, s.record, now(), 'dropped'
        FROM therapy_timer.sessions s WHERE s.id = c.session_id
        ON CONFLICT DO NOTHING;
        UPDATE therapy_timer.sessions SET
            record = c.record, content_hash = c.content_hash,
            date_of_service = (c.record->>'date_of_service')::date,
            patient_ref = c.record->>'patient_ref', clinician = c.record->>'clinician',
            role = c.record->>'role', discipline = c.record->>'discipline',
            payer_profile = c.record->>'payer_profile', amended = true,
            closed_utc = (c.record->>'closed_utc')::timestamptz, pushed_utc = now()
        WHERE id = c.session_id;
        DELETE FROM therapy_timer.segments WHERE session_id = c.session_id;
        DELETE FROM therapy_timer.untimed WHERE session_id = c.session_id;
        INSERT INTO therapy_timer.segments
            (id, session_id, workstation, code, furnished_by, exclusive, start_utc, stop_utc)
        SELECT t.id, c.session_id, c.workstation, t.code, t.furnished_by, t.exclusive,
               t.start_utc, t.stop_utc
        FROM jsonb_to_recordset(c.record->'segments') AS t(id uuid, code text,
            furnished_by text, exclusive boolean, start_utc timestamptz, stop_utc timestamptz);
        INSERT INTO therapy_timer.untimed
            (session_id, position, workstation, code, minutes, furnished_by, created_utc)
        SELECT c.session_id, (n - 1)::integer, c.workstation, t.code, t.minutes, t.furnished_by,
               t.created_utc
        FROM ROWS FROM (jsonb_to_recordset(c.record->'untimed') AS (code text,
            minutes integer, furnished_by text, created_utc timestamptz))
            WITH ORDINALITY AS t(code, minutes, furnished_by, created_utc, n);
    END IF;
    UPDATE therapy_timer.conflicts SET resolved_utc = now(), resolution = decision
    WHERE id = wanted;
    INSERT INTO therapy_timer.events (actor, action, entity, entity_id, details)
    VALUES (session_user, 'conflict.' || decision, 'session', c.session_id::text,
            jsonb_build_object('conflict', wanted, 'reason', btrim(why)));
    RETURN c.session_id::text;
END $$;
REVOKE ALL ON FUNCTION therapy_timer.settle_conflict(bigint, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION therapy_timer.settle_conflict(bigint, text, text) TO {DESK_GROUP};
"""

# The desk's rights shrink to reading and two functions. A column grant let it clear an export
# mark (UPDATE ... SET exported = false) and write a conflict's resolution without settling
# it; now the marking is a function that only ever sets the mark and records it, the mark
# cannot be cleared by anyone, and conflicts are settled through settle_conflict alone.
# A replaced audit entry is recorded once per content in its own table, so delivering the same
# diverged log again changes nothing on the server (it used to add an event every time).
_M004_DESK_MARKS_ONLY = f"""
REVOKE UPDATE ON therapy_timer.sessions FROM {DESK_GROUP};
REVOKE UPDATE ON therapy_timer.conflicts FROM {DESK_GROUP};
REVOKE INSERT ON therapy_timer.events FROM {DESK_GROUP};
DROP POLICY desk_marks ON therapy_timer.sessions;
DROP POLICY desk_settles ON therapy_timer.conflicts;

CREATE FUNCTION therapy_timer.keep_export_mark() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.exported AND NOT NEW.exported THEN
        RAISE EXCEPTION 'session % was exported: the mark cannot be cleared', OLD.id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER export_mark_stays BEFORE UPDATE OF exported ON therapy_timer.sessions
    FOR EACH ROW EXECUTE FUNCTION therapy_timer.keep_export_mark();

CREATE FUNCTION therapy_timer.mark_exported(wanted uuid[])
    RETURNS SETOF text LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF NOT pg_has_role(session_user, '{DESK_GROUP}', 'MEMBER') THEN
        RAISE EXCEPTION 'only the desk marks sessions exported'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN QUERY
    WITH marked AS (
        UPDATE therapy_timer.sessions SET exported = true
        WHERE id = ANY(wanted) AND NOT exported RETURNING id::text
    ), logged AS (
        INSERT INTO therapy_timer.events (actor, action, entity, entity_id)
        SELECT session_user, 'session.export', 'session', id FROM marked
    )
    SELECT id FROM marked;
END $$;
REVOKE ALL ON FUNCTION therapy_timer.mark_exported(uuid[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION therapy_timer.mark_exported(uuid[]) TO {DESK_GROUP};

CREATE TABLE therapy_timer.diverged_audit (
    workstation text NOT NULL DEFAULT current_user,
    local_id bigint NOT NULL,
    entry_hash text NOT NULL,
    received_utc timestamptz NOT NULL DEFAULT now(),
    entry jsonb NOT NULL,
    PRIMARY KEY (workstation, local_id, entry_hash)
);
CREATE TRIGGER diverged_audit_append_only BEFORE UPDATE OR DELETE ON therapy_timer.diverged_audit
    FOR EACH ROW EXECUTE FUNCTION therapy_timer.refuse_change();
REVOKE ALL ON therapy_timer.diverged_audit FROM PUBLIC;
GRANT SELECT, INSERT ON therapy_timer.diverged_audit TO {WORKSTATION_GROUP};
GRANT SELECT ON therapy_timer.diverged_audit TO {DESK_GROUP};
ALTER TABLE therapy_timer.diverged_audit ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_rows ON therapy_timer.diverged_audit FOR ALL TO {WORKSTATION_GROUP}
    USING (workstation = current_user) WITH CHECK (workstation = current_user);
CREATE POLICY desk_reads ON therapy_timer.diverged_audit FOR SELECT TO {DESK_GROUP} USING (true);
"""

# A session a workstation amends after the desk billed it must be billed again (the rule of
# issue 11, now across workstations): the mark remembers the content it was set on, so a
# later content is "amended after export" until the desk marks it again.
_M005_MARK_REMEMBERS_CONTENT = f"""
ALTER TABLE therapy_timer.sessions ADD COLUMN exported_content_hash text;
UPDATE therapy_timer.sessions SET exported_content_hash = content_hash WHERE exported;

CREATE OR REPLACE FUNCTION therapy_timer.mark_exported(wanted uuid[])
    RETURNS SETOF text LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF NOT pg_has_role(session_user, '{DESK_GROUP}', 'MEMBER') THEN
        RAISE EXCEPTION 'only the desk marks sessions exported'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN QUERY
    WITH marked AS (
        UPDATE therapy_timer.sessions
        SET exported = true, exported_content_hash = content_hash
        WHERE id = ANY(wanted)
            AND (NOT exported OR exported_content_hash IS DISTINCT FROM content_hash)
        RETURNING id::text
    ), logged AS (
        INSERT INTO therapy_timer.events (actor, action, entity, entity_id)
        SELECT session_user, 'session.export', 'session', id FROM marked
    )
    SELECT id FROM marked;
END $$;
"""

# The desk marks a session exported only as it read it: a version a workstation syncs between
# the desk's read and its mark was in no file, so it stays "amended after export" (due again)
# rather than being marked billed. The one-argument form stays for desks not yet upgraded.
_M006_MARK_AS_READ = f"""
CREATE FUNCTION therapy_timer.mark_exported(wanted uuid[], as_read text[])
    RETURNS SETOF text LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF NOT pg_has_role(session_user, '{DESK_GROUP}', 'MEMBER') THEN
        RAISE EXCEPTION 'only the desk marks sessions exported'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF cardinality(wanted) IS DISTINCT FROM cardinality(as_read) THEN
        RAISE EXCEPTION 'one content hash for each session marked'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN QUERY
    WITH marked AS (
        UPDATE therapy_timer.sessions s
        SET exported = true, exported_content_hash = w.content_hash
        FROM unnest(wanted, as_read) AS w(id, content_hash)
        WHERE s.id = w.id
            AND (NOT s.exported OR s.exported_content_hash IS DISTINCT FROM w.content_hash)
        RETURNING s.id::text
    ), logged AS (
        INSERT INTO therapy_timer.events (actor, action, entity, entity_id)
        SELECT session_user, 'session.export', 'session', id FROM marked
    )
    SELECT id FROM marked;
END $$;
REVOKE ALL ON FUNCTION therapy_timer.mark_exported(uuid[], text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION therapy_timer.mark_exported(uuid[], text[]) TO {DESK_GROUP};
"""

# A session its workstation moves off a claim day the desk billed (another patient, payer or
# date) took its minutes out of that day: the day's other sessions, whichever workstation
# recorded them, are due again (what the store does for its own, ``left_behind``). A day is
# keyed as billing.day_key keys it. The desk marks each session with the claim day it billed
# it in: a session that left that day between the desk's read and its mark leaves the day's
# others due too, as if it had left after the mark.
_DAY_KEY = "jsonb_build_array({t}date_of_service::text, lower(btrim({t}patient_ref)),"
_DAY_KEY += " {t}discipline, {t}payer_profile)"

_M007_DAY_LEFT = f"""
CREATE FUNCTION therapy_timer.day_left() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF OLD.exported AND {_DAY_KEY.format(t="NEW.")} <> {_DAY_KEY.format(t="OLD.")} THEN
        WITH due AS (
            UPDATE therapy_timer.sessions s SET exported_content_hash = NULL
            WHERE s.exported AND s.exported_content_hash IS NOT NULL AND s.id <> OLD.id
                AND {_DAY_KEY.format(t="s.")} = {_DAY_KEY.format(t="OLD.")}
            RETURNING s.id::text
        )
        INSERT INTO therapy_timer.events (actor, action, entity, entity_id, details)
        SELECT session_user, 'session.day_changed', 'session', id,
               jsonb_build_object('left', OLD.id::text)
        FROM due;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER day_left AFTER UPDATE ON therapy_timer.sessions
    FOR EACH ROW EXECUTE FUNCTION therapy_timer.day_left();

CREATE FUNCTION therapy_timer.mark_exported(wanted uuid[], as_read text[], billed_in jsonb[])
    RETURNS SETOF text LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF NOT pg_has_role(session_user, '{DESK_GROUP}', 'MEMBER') THEN
        RAISE EXCEPTION 'only the desk marks sessions exported'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF cardinality(wanted) IS DISTINCT FROM cardinality(as_read)
            OR cardinality(wanted) IS DISTINCT FROM cardinality(billed_in) THEN
        RAISE EXCEPTION 'one content hash and one claim day for each session marked'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN QUERY
    WITH w AS (
        SELECT * FROM unnest(wanted, as_read, billed_in) AS w(id, content_hash, day)
    ), left_days AS (
        SELECT DISTINCT w.day FROM w JOIN therapy_timer.sessions s ON s.id = w.id
        WHERE {_DAY_KEY.format(t="s.")} <> w.day
    ), marked AS (
        UPDATE therapy_timer.sessions s
        SET exported = true, exported_content_hash = m.content_hash
        FROM (
            SELECT w.id, CASE WHEN w.day IN (SELECT day FROM left_days)
                    AND t.content_hash = w.content_hash THEN NULL
                ELSE w.content_hash END AS content_hash
            FROM w JOIN therapy_timer.sessions t ON t.id = w.id
        ) m
        WHERE s.id = m.id
            AND (NOT s.exported OR s.exported_content_hash IS DISTINCT FROM m.content_hash)
        RETURNING s.id::text
    ), logged AS (
        INSERT INTO therapy_timer.events (actor, action, entity, entity_id)
        SELECT session_user, 'session.export', 'session', id FROM marked
    )
    SELECT id FROM marked;
END $$;
REVOKE ALL ON FUNCTION therapy_timer.mark_exported(uuid[], text[], jsonb[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION therapy_timer.mark_exported(uuid[], text[], jsonb[]) TO {DESK_GROUP};
"""

# A version the desk accepted from another workstation is the clinic's decision: the
# session's own workstation, which still holds what it had, must not write over it as its
# own later version (its history on the server is unchanged by the settlement). Which of
# the sessions it would amend hold such a version now, without showing it the conflicts.
_M008_SETTLED_AT_DESK = f"""
CREATE FUNCTION therapy_timer.settled_at_desk(wanted uuid[])
    RETURNS SETOF text LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp AS $$
    SELECT s.id::text FROM therapy_timer.sessions s
    WHERE s.id = ANY(wanted) AND EXISTS (
        SELECT 1 FROM therapy_timer.conflicts c
        WHERE c.session_id = s.id AND c.resolution = 'accepted'
            AND c.content_hash = s.content_hash AND c.workstation <> session_user)
$$;
REVOKE ALL ON FUNCTION therapy_timer.settled_at_desk(uuid[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION therapy_timer.settled_at_desk(uuid[]) TO {WORKSTATION_GROUP};
"""

# A workstation's INSERT right covered every column: a session could arrive already marked
# exported (never billed, though in no file) and a kept-aside version already settled (which
# settled_at_desk trusts). It may now name only what a push writes; the rest is the desk's.
_M009_WORKSTATION_COLUMNS = f"""
REVOKE INSERT ON therapy_timer.sessions, therapy_timer.conflicts FROM {WORKSTATION_GROUP};
GRANT INSERT (id, workstation, date_of_service, patient_ref, clinician, role, discipline,
              payer_profile, amended, created_utc, closed_utc, content_hash, record, pushed_utc)
    ON therapy_timer.sessions TO {WORKSTATION_GROUP};
GRANT INSERT (workstation, session_id, content_hash, received_utc, why, record)
    ON therapy_timer.conflicts TO {WORKSTATION_GROUP};
"""

# The desk's mark names the content it billed by its hash, which the workstation computes: a
# record changed under the same hash, or an old hash put back over a changed record, looked
# billed though the file had other minutes. The hash now changes exactly when the content
# (the record without its audit trail, which the hash leaves out too) does.
_M010_HASH_FOLLOWS_CONTENT = """
CREATE FUNCTION therapy_timer.hash_follows_content() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF ((NEW.record - 'audit') IS DISTINCT FROM (OLD.record - 'audit'))
            <> (NEW.content_hash IS DISTINCT FROM OLD.content_hash) THEN
        RAISE EXCEPTION 'session %: its content hash must change with its content, and only then',
            OLD.id USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER hash_follows_content BEFORE UPDATE OF record, content_hash
    ON therapy_timer.sessions
    FOR EACH ROW EXECUTE FUNCTION therapy_timer.hash_follows_content();
"""

# When a station last synced is the server's word: the desk reads it to know whose minutes it
# has, and a station's clock hours behind made each sync look hours stale, one ahead looked
# fresh hours after it stopped, and one writing 'infinity' ended the desk's reads (Python has
# no such moment). The server's clock stamps the heartbeat and a kept-aside version's arrival;
# a moment written before this, out of Python's range, is forgotten.
_M011_SERVER_CLOCK = f"""
UPDATE therapy_timer.workstations SET last_sync_utc = NULL
    WHERE NOT last_sync_utc BETWEEN '0002-01-01' AND '9998-12-31';
UPDATE therapy_timer.workstations SET heartbeat_utc = NULL
    WHERE NOT heartbeat_utc BETWEEN '0002-01-01' AND '9998-12-31';
UPDATE therapy_timer.conflicts SET received_utc = now()
    WHERE NOT received_utc BETWEEN '0002-01-01' AND '9998-12-31';

CREATE FUNCTION therapy_timer.heard_now() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- A station's write, not the administrator's (pg_restore of a dump keeps what it had).
    IF pg_has_role(current_user, '{WORKSTATION_GROUP}', 'MEMBER') AND NOT (
            SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
        NEW.last_sync_utc := now();
        NEW.heartbeat_utc := now();
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER heard_now BEFORE INSERT OR UPDATE ON therapy_timer.workstations
    FOR EACH ROW EXECUTE FUNCTION therapy_timer.heard_now();

REVOKE INSERT ON therapy_timer.conflicts FROM {WORKSTATION_GROUP};
GRANT INSERT (workstation, session_id, content_hash, why, record)
    ON therapy_timer.conflicts TO {WORKSTATION_GROUP};
"""

MIGRATIONS: tuple[tuple[str, str], ...] = (
    ("m001_tables", _M001_TABLES),
    ("m002_least_privilege", _M002_LEAST_PRIVILEGE),
    ("m003_settle_conflicts", _M003_SETTLE_CONFLICTS),
    ("m004_desk_marks_only", _M004_DESK_MARKS_ONLY),
    ("m005_mark_remembers_content", _M005_MARK_REMEMBERS_CONTENT),
    ("m006_mark_as_read", _M006_MARK_AS_READ),
    ("m007_day_left", _M007_DAY_LEFT),
    ("m008_settled_at_desk", _M008_SETTLED_AT_DESK),
    ("m009_workstation_columns", _M009_WORKSTATION_COLUMNS),
    ("m010_hash_follows_content", _M010_HASH_FOLLOWS_CONTENT),
    ("m011_server_clock", _M011_SERVER_CLOCK),
)
LATEST_VERSION = len(MIGRATIONS)

_LOCK_KEY = 0x54544D53  # one upgrader at a time, whichever workstation connects first

Connection = psycopg.Connection[tuple[Any, ...]]


def schema_version(conn: Connection) -> int | None:
    """The applied version, or None when the server has no Therapy Timer schema yet."""
    with conn.transaction():
        row = conn.execute(
            "SELECT to_regclass('therapy_timer.schema_version') IS NOT NULL"
        ).fetchone()
        if row is None or not row[0]:
            return None
        found = conn.execute("SELECT max(version) FROM therapy_timer.schema_version").fetchone()
    return int(found[0]) if found and found[0] is not None else 0


def upgrade(conn: Connection, *, target: int = LATEST_VERSION) -> list[str]:
    """Apply the migrations after the server's version up to ``target``; the names applied.

    ServerVersionError when the server is newer than this app; ServerRefused, with nothing
    changed, when this role may not create or alter the schema.
    """
    try:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {SCHEMA}.schema_version ("
                " version integer PRIMARY KEY, name text NOT NULL,"
                " applied_utc timestamptz NOT NULL DEFAULT now())"
            )
            found = conn.execute(
                f"SELECT coalesce(max(version), 0) FROM {SCHEMA}.schema_version"
            ).fetchone()
            current = int(found[0]) if found else 0
            if current > LATEST_VERSION:
                raise ServerVersionError(
                    f"the clinic server's schema (version {current}) is newer than this app "
                    f"understands (version {LATEST_VERSION}); update Therapy Timer"
                )
            applied = []
            for version in range(current + 1, target + 1):
                name, script = MIGRATIONS[version - 1]
                conn.execute(script)
                conn.execute(
                    f"INSERT INTO {SCHEMA}.schema_version (version, name) VALUES (%s, %s)",
                    [version, name],
                )
                applied.append(name)
    except psycopg.errors.InsufficientPrivilege:
        raise ServerRefused(
            "this role may not create or upgrade the clinic server's schema; whoever set up the"
            " server runs `therapy-timer clinic init-server` (docs/clinic-server.md)"
        ) from None
    except psycopg.errors.UndefinedObject as exc:
        raise ServerRefused(
            f"the clinic server is not set up ({exc.diag.message_primary}); run"
            " `therapy-timer clinic init-server` first (docs/clinic-server.md)"
        ) from None
    return applied
