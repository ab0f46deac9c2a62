-- Run-meta names that say what they hold: the current best is not the baseline (the root is).
UPDATE meta SET name = 'best_node' WHERE name = 'baseline_node';
UPDATE meta SET name = 'evaluated_configs' WHERE name = 'evaluated';
UPDATE meta SET name = 'reviewed_at_actions' WHERE name = 'last_review_at';
UPDATE meta SET name = 'llm_stopped' WHERE name = 'llm_offline';
