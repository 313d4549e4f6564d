-- The durable record of the regulation centre (PostgreSQL).
-- `events` is append-only: a trigger refuses UPDATE and DELETE.

CREATE TABLE events (
    seq            BIGINT  PRIMARY KEY,
    recorded_at_ms BIGINT  NOT NULL,
    command_key    TEXT    NOT NULL,
    kind           TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    payload        TEXT    NOT NULL
);

CREATE TABLE commands (
    key            TEXT    PRIMARY KEY,
    first_seq      BIGINT  NOT NULL REFERENCES events (seq),
    last_seq       BIGINT  NOT NULL REFERENCES events (seq),
    recorded_at_ms BIGINT  NOT NULL
);

CREATE TABLE outbox (
    id               BIGSERIAL PRIMARY KEY,
    idempotency_key  TEXT    NOT NULL UNIQUE,
    seq              BIGINT  NOT NULL REFERENCES events (seq),
    kind             TEXT    NOT NULL,
    destination      TEXT    NOT NULL,
    payload          TEXT    NOT NULL,
    created_at_ms    BIGINT  NOT NULL,
    delivered_at_ms  BIGINT,
    attempts         INTEGER NOT NULL DEFAULT 0,
    last_error       TEXT
);
CREATE INDEX outbox_pending ON outbox (destination, id) WHERE delivered_at_ms IS NULL;

CREATE FUNCTION regula_refuse_event_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'events are append-only';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER events_are_append_only
    BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION regula_refuse_event_change();
