-- A key means one command: each stored key remembers which command it carried (its name
-- and a SHA-256 fingerprint of its canonical JSON), so the same key sent with another
-- command is refused instead of being answered as a duplicate. Rows from before this
-- migration have neither (NULL) and are matched on the key alone.
ALTER TABLE commands ADD COLUMN command TEXT;
ALTER TABLE commands ADD COLUMN fingerprint TEXT;

-- Facts about the log itself: the secret that keys internal commands (`log_secret`), the
-- writer that last opened it (`writer`: pid, host, time; written at every start, which also
-- proves the log can be written).
CREATE TABLE log_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
