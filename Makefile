# The two commands of the README. Each prepares everything it needs first.
.PHONY: demo test setup

setup:
	@bash scripts/bootstrap.sh

demo: setup
	.venv/bin/arbor-host run

test: setup
	.venv/bin/python -m pytest
