-- The campaign store: the search tree, measurements, constraints, alerts, events, steering, LLM calls.
CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);

CREATE TABLE nodes (
    id INTEGER PRIMARY KEY,
    parent INTEGER REFERENCES nodes (id),
    depth INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('proposed', 'running', 'kept', 'reverted', 'crashed', 'pruned',
                                           'invalid')),
    title TEXT NOT NULL,
    category TEXT NOT NULL,
    layer TEXT,
    kind TEXT NOT NULL,
    change TEXT NOT NULL,
    config TEXT NOT NULL,
    rationale TEXT NOT NULL DEFAULT '',
    proposer TEXT NOT NULL,
    score REAL,
    score_terms TEXT NOT NULL DEFAULT '{}',
    priors TEXT NOT NULL DEFAULT '{}',
    gain REAL,
    gain_low REAL,
    gain_high REAL,
    diagnosis TEXT,
    measurement_ids TEXT NOT NULL DEFAULT '[]',
    attempts INTEGER NOT NULL DEFAULT 0,
    pinned INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL
);
CREATE INDEX nodes_status ON nodes (status);
CREATE INDEX nodes_parent ON nodes (parent);

CREATE TABLE measurements (
    id INTEGER PRIMARY KEY,
    node INTEGER NOT NULL REFERENCES nodes (id),
    kind TEXT NOT NULL CHECK (kind IN ('primary', 'sweep', 'parity', 'profile')),
    fingerprint TEXT,
    metrics TEXT NOT NULL,
    path TEXT,
    valid INTEGER NOT NULL DEFAULT 1,
    created_at REAL NOT NULL
);
CREATE INDEX measurements_node ON measurements (node, kind);

CREATE TABLE constraints (
    id INTEGER PRIMARY KEY,
    knob TEXT,
    op TEXT NOT NULL CHECK (op IN ('eq', 'ge', 'le', 'text')),
    value TEXT,
    requires TEXT NOT NULL DEFAULT '{}',
    reason TEXT NOT NULL,
    evidence TEXT NOT NULL DEFAULT '{}',
    node INTEGER REFERENCES nodes (id),
    created_at REAL NOT NULL,
    expires_at REAL
);

CREATE TABLE alerts (
    id INTEGER PRIMARY KEY,
    severity TEXT NOT NULL CHECK (severity IN ('info', 'warning', 'error', 'critical')),
    kind TEXT NOT NULL,
    message TEXT NOT NULL,
    evidence TEXT NOT NULL DEFAULT '{}',
    node INTEGER REFERENCES nodes (id),
    needs_human INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    acked_at REAL
);

CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    kind TEXT NOT NULL,
    node INTEGER,
    data TEXT NOT NULL DEFAULT '{}'
);
CREATE TRIGGER events_append_only_update BEFORE UPDATE ON events BEGIN
    SELECT RAISE(ABORT, 'the event log is append-only');
END;
CREATE TRIGGER events_append_only_delete BEFORE DELETE ON events BEGIN
    SELECT RAISE(ABORT, 'the event log is append-only');
END;

CREATE TABLE commands (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL DEFAULT '{}',
    applied_at REAL,
    result TEXT
);

CREATE TABLE llm_calls (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    role TEXT NOT NULL,
    node INTEGER,
    model TEXT NOT NULL,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    cache_read_tokens INTEGER NOT NULL DEFAULT 0,
    cache_write_tokens INTEGER NOT NULL DEFAULT 0,
    cost_usd REAL NOT NULL DEFAULT 0,
    transcript TEXT
);
