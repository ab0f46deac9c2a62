-- A crash constrains the context it crashed in: the values (besides the ruled-out one) that held
-- when it crashed. Empty means everywhere, as every constraint before this migration was.
ALTER TABLE constraints ADD COLUMN context TEXT NOT NULL DEFAULT '{}';
