-- A revision number on every node, bumped by each insert and update, so a reader (the TUI)
-- fetches only the nodes that changed since its last look instead of the whole tree.
ALTER TABLE nodes ADD COLUMN rev INTEGER NOT NULL DEFAULT 0;
UPDATE nodes SET rev = id;
CREATE INDEX nodes_rev ON nodes (rev);
CREATE TRIGGER nodes_rev_insert AFTER INSERT ON nodes BEGIN
    UPDATE nodes SET rev = (SELECT MAX(rev) FROM nodes) + 1 WHERE id = NEW.id;
END;
CREATE TRIGGER nodes_rev_update AFTER UPDATE ON nodes WHEN NEW.rev = OLD.rev BEGIN
    UPDATE nodes SET rev = (SELECT MAX(rev) FROM nodes) + 1 WHERE id = NEW.id;
END;
-- An operator's answer to an escalation, kept with the alert.
ALTER TABLE alerts ADD COLUMN answer TEXT;
