-- Snapshots are written in parts of about a megabyte, each in its own short transaction,
-- so that storing a large state never holds the (single) writer of the log for long; the
-- `snapshots` row is written last and says how many parts make the state.
CREATE TABLE snapshot_parts (
    last_seq BIGINT  NOT NULL,
    part     BIGINT  NOT NULL,
    data     TEXT    NOT NULL,
    PRIMARY KEY (last_seq, part)
);
ALTER TABLE snapshots ADD COLUMN parts BIGINT NOT NULL DEFAULT 0;
