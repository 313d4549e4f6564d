-- The dispatch state after event `last_seq`, so that a restart replays only what came
-- after. Snapshots are a cache of the log: deleting them is always safe.
CREATE TABLE snapshots (
    last_seq      BIGINT  PRIMARY KEY,
    created_at_ms BIGINT  NOT NULL,
    -- Format of `state` (dispatch_core::Dispatch::SNAPSHOT_FORMAT); another is ignored.
    format        BIGINT  NOT NULL,
    state         TEXT    NOT NULL
);
