-- Priors sum results and gains per back-off level: covering indexes answer them without the table.
DROP INDEX outcomes_exact;
DROP INDEX outcomes_category_hw;
DROP INDEX outcomes_category;
CREATE INDEX outcomes_exact ON outcomes (knob, value, hardware, model_family, stack, result, gain);
CREATE INDEX outcomes_category_hw ON outcomes (category, hardware, stack, result, gain);
CREATE INDEX outcomes_category ON outcomes (category, result, gain);
