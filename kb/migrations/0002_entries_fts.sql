-- Full-text search (BM25) over entries, kept in step by triggers; rebuilt for rows already there.
CREATE VIRTUAL TABLE entries_fts USING fts5(
    title, body, knob, category, stack, hardware, model_family,
    content='entries', content_rowid='rowid', tokenize='porter unicode61'
);

CREATE TRIGGER entries_ai AFTER INSERT ON entries BEGIN
    INSERT INTO entries_fts(rowid, title, body, knob, category, stack, hardware, model_family)
    VALUES (new.rowid, new.title, new.body, new.knob, new.category, new.stack, new.hardware, new.model_family);
END;

CREATE TRIGGER entries_ad AFTER DELETE ON entries BEGIN
    INSERT INTO entries_fts(entries_fts, rowid, title, body, knob, category, stack, hardware, model_family)
    VALUES ('delete', old.rowid, old.title, old.body, old.knob, old.category, old.stack, old.hardware, old.model_family);
END;

CREATE TRIGGER entries_au AFTER UPDATE ON entries BEGIN
    INSERT INTO entries_fts(entries_fts, rowid, title, body, knob, category, stack, hardware, model_family)
    VALUES ('delete', old.rowid, old.title, old.body, old.knob, old.category, old.stack, old.hardware, old.model_family);
    INSERT INTO entries_fts(rowid, title, body, knob, category, stack, hardware, model_family)
    VALUES (new.rowid, new.title, new.body, new.knob, new.category, new.stack, new.hardware, new.model_family);
END;

INSERT INTO entries_fts(entries_fts) VALUES ('rebuild');
