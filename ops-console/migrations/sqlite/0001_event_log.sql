-- The durable record of the regulation centre (SQLite).
-- `events` is append-only: triggers refuse UPDATE and DELETE.

CREATE TABLE events (
    -- Position in the log, assigned by the engine (last + 1); the primary key makes two
    -- writers that disagree about the end of the log fail instead of interleaving.
    seq            INTEGER PRIMARY KEY,
    -- When the engine recorded the event (UTC, ms since the Unix epoch).
    recorded_at_ms INTEGER NOT NULL,
    -- Idempotency key of the command that produced it.
    command_key    TEXT    NOT NULL,
    -- The event's snake-case name, for people reading the table.
    kind           TEXT    NOT NULL,
    -- Schema version of `payload`.
    version        INTEGER NOT NULL,
    -- The event as JSON.
    payload        TEXT    NOT NULL
);

-- One row per applied command: a key is stored at most once.
CREATE TABLE commands (
    key            TEXT    PRIMARY KEY,
    first_seq      INTEGER NOT NULL REFERENCES events (seq),
    last_seq       INTEGER NOT NULL REFERENCES events (seq),
    recorded_at_ms INTEGER NOT NULL
);

-- Messages that leave the process (EPS transfer records, referrals, hospital pre-alerts),
-- written in the same transaction as the events that caused them.
CREATE TABLE outbox (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    idempotency_key  TEXT    NOT NULL UNIQUE,
    seq              INTEGER NOT NULL REFERENCES events (seq),
    kind             TEXT    NOT NULL,
    destination      TEXT    NOT NULL,
    payload          TEXT    NOT NULL,
    created_at_ms    INTEGER NOT NULL,
    delivered_at_ms  INTEGER,
    attempts         INTEGER NOT NULL DEFAULT 0,
    last_error       TEXT
);
CREATE INDEX outbox_pending ON outbox (destination, id) WHERE delivered_at_ms IS NULL;

CREATE TRIGGER events_are_append_only_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only');
END;
CREATE TRIGGER events_are_append_only_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only');
END;
