-- The dispatch state after event `last_seq`, so that a restart replays only what came
-- after. Snapshots are a cache of the log: deleting them is always safe.
CREATE TABLE snapshots (
    last_seq      INTEGER PRIMARY KEY,
    created_at_ms INTEGER NOT NULL,
    -- Format of `state` (dispatch_core::Dispatch::SNAPSHOT_FORMAT); another is ignored.
    format        INTEGER NOT NULL,
    state         TEXT    NOT NULL
);
