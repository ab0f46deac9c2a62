-- Indexes behind the prior back-off levels and entry matching.
CREATE INDEX outcomes_exact ON outcomes (knob, value, hardware, model_family, stack);
CREATE INDEX outcomes_category_hw ON outcomes (category, hardware, stack);
CREATE INDEX outcomes_category ON outcomes (category);
CREATE INDEX outcomes_campaign ON outcomes (campaign);
CREATE INDEX entries_knob ON entries (knob, hardware);
CREATE INDEX entries_category ON entries (category, hardware);
CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
