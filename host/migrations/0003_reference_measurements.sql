-- Fresh repeats of a kept configuration, measured after the keep was decided. Later candidates are
-- compared with these: the repeats that won the keep were selected for being high, so they read high.
-- SQLite cannot alter a CHECK constraint, so the table is rebuilt with the new kind allowed.
CREATE TABLE measurements_new (
    id INTEGER PRIMARY KEY,
    node INTEGER NOT NULL REFERENCES nodes (id),
    kind TEXT NOT NULL CHECK (kind IN ('primary', 'sweep', 'parity', 'profile', 'reference')),
    fingerprint TEXT,
    metrics TEXT NOT NULL,
    path TEXT,
    valid INTEGER NOT NULL DEFAULT 1,
    created_at REAL NOT NULL
);
INSERT INTO measurements_new (id, node, kind, fingerprint, metrics, path, valid, created_at)
    SELECT id, node, kind, fingerprint, metrics, path, valid, created_at FROM measurements;
DROP TABLE measurements;
ALTER TABLE measurements_new RENAME TO measurements;
CREATE INDEX measurements_node ON measurements (node, kind);
