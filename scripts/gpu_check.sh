#!/usr/bin/env bash
# Arbor's end-to-end check on a machine with one NVIDIA or AMD GPU (not part of `make test`).
#
# Installs vLLM with pip into a temporary venv (pip's own index configuration: PIP_INDEX_URL, pip.conf,
# find-links), serves a small model once (under rocprofv3 or nsys when present), runs a 3-action Arbor
# campaign on it with the torch profiler, and prints ONE JSON line on stdout: GPU, engine version, actions,
# kept, profile categories, errors. Everything else goes to stderr. Unattended, under 10 minutes; whatever
# it started is stopped on exit, and its temporary folder removed.
#
# Exit status: 0 all steps worked; 1 a step failed (named in "errors"); 2 no GPU found.
#
# Environment:
#   ARBOR_GPU_MODEL       model id or local folder (default HuggingFaceTB/SmolLM2-135M-Instruct)
#   ARBOR_VLLM_SPEC       what pip installs (default "vllm", a CUDA build; on AMD point pip's configuration at a
#                         ROCm build, name one here, or use ARBOR_VLLM_VENV)
#   ARBOR_VLLM_VENV       an existing environment with vLLM: no install
#   ARBOR_HOST            arbor-host to run (default: the repository's .venv, else PATH)
#   ARBOR_PYTHON          the Python that has Arbor, for the summary (default: the repository's .venv)
#   ARBOR_GPU_CHECK_S     overall deadline in seconds (default 570)
#   ARBOR_GPU_CHECK_KEEP  non-empty: keep the temporary folder (its path is in the JSON line)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MODEL=${ARBOR_GPU_MODEL:-HuggingFaceTB/SmolLM2-135M-Instruct}
SERVED=gpucheck  # the name requests use: a model path need not be quoted into JSON
ACTIONS=3

DEADLINE=0         # SECONDS at which everything must be done
WORK=""            # the temporary folder: venv, logs, runs, profiles
EMITTED=0          # the JSON line is printed once, whatever happens
GROUPS_STARTED=()  # process groups this script started
NO_GPU_WHY=""      # what the GPU tools said when they found none
GPU_VENDOR="" GPU_NAME="" KPROF="" VLLM="" ENGINE_VERSION="" RUN_DIR="" ARBOR_PY=""

exec 3>&1 1>&2  # fd 3 is the JSON line's; every other output goes to stderr

log() { printf '[gpu_check %3ds] %s\n' "$SECONDS" "$*"; }

json_str() {  # a JSON string literal, without python (the no-GPU answer must not need it)
  local s=$1
  s=${s//\\/\\\\}; s=${s//\"/\\\"}; s=${s//$'\n'/\\n}; s=${s//$'\t'/\\t}; s=${s//$'\r'/\\r}
  printf '"%s"' "$(printf '%s' "$s" | tr -d '\000-\010\013\014\016-\037')"
}

json_or_null() { if [[ -n $1 ]]; then json_str "$1"; else printf null; fi; }

emit_error() {  # the one JSON line for a check that could not get to its summary
  local message=$1
  EMITTED=1
  printf '{"ok": false, "error": %s, "gpu": %s, "engine": "vllm", "engine_version": %s, "actions": 0, ' \
    "$(json_str "$message")" "$(json_or_null "$GPU_VENDOR")" "$(json_or_null "$ENGINE_VERSION")" >&3
  printf '"kept": 0, "profile_categories": {}, "errors": [%s]}\n' "$(json_str "$message")" >&3
}

record_error() {  # a failed step: the check goes on, the JSON line lists it
  log "error: $*"
  printf '%s\n' "$*" >>"$WORK/errors"
}

remaining() { echo $((DEADLINE - SECONDS)); }

budget() {  # seconds a step may take: its own cap, within what is left before the deadline (60 s kept back)
  local cap=$1 left
  left=$(($(remaining) - 60))
  ((left < cap)) && cap=$left
  ((cap < 1)) && cap=1
  echo "$cap"
}

# --- the GPU -----------------------------------------------------------------------------------------------

detect_gpu() {  # sets GPU_VENDOR and GPU_NAME; else returns 1 with the tools' own words in NO_GPU_WHY
  local out said=()
  if command -v nvidia-smi >/dev/null 2>&1; then
    out=$(nvidia-smi -L 2>&1) || true
    if grep -Eq '^GPU [0-9]+:' <<<"$out"; then
      GPU_VENDOR=nvidia
      GPU_NAME=$(grep -E '^GPU 0:' <<<"$out" | sed -E 's/^GPU 0: (.*) \(UUID.*$/\1/')
      return 0
    fi
    said+=("nvidia-smi: $(head -n 1 <<<"$out")")
  fi
  if command -v amd-smi >/dev/null 2>&1; then
    out=$(amd-smi list 2>&1) || true
    if grep -Eq '^GPU: [0-9]+' <<<"$out"; then
      GPU_VENDOR=amd
      GPU_NAME=$(amd_name)
      return 0
    fi
    said+=("amd-smi: $(head -n 1 <<<"$out")")
  fi
  if command -v rocm-smi >/dev/null 2>&1; then
    out=$(rocm-smi --showproductname 2>&1) || true
    if grep -Eq '^GPU\[[0-9]+\]' <<<"$out"; then
      GPU_VENDOR=amd
      GPU_NAME=$(amd_name)
      return 0
    fi
    said+=("rocm-smi: $({ grep -v -e '^=*$' -e 'ROCm System Management' <<<"$out" || true; } | head -n 1)")
  fi
  ((${#said[@]})) || said=("none of nvidia-smi, amd-smi, rocm-smi is installed")
  local IFS=';'
  NO_GPU_WHY="${said[*]}"
  return 1
}

amd_name() {
  { rocm-smi --showproductname 2>/dev/null || true; } | sed -nE 's/^GPU\[0\][^:]*: Card Series:[[:space:]]*//p' |
    head -n 1 | sed 's/[[:space:]]*$//' | grep . || echo "AMD GPU"
}

pick_kernel_profiler() {  # rocprofv3 on AMD, nsys on NVIDIA, where installed
  if [[ $GPU_VENDOR == amd ]] && command -v rocprofv3 >/dev/null 2>&1; then KPROF=rocprofv3; fi
  if [[ $GPU_VENDOR == nvidia ]] && command -v nsys >/dev/null 2>&1; then KPROF=nsys; fi
  log "GPU: $GPU_VENDOR ${GPU_NAME}; kernel profiler: ${KPROF:-none}"
}

# --- processes ------------------------------------------------------------------------------------------------

stop_group() {  # signal a process group, then TERM and KILL it if it lingers
  local pgid=$1 signal=${2:-TERM} grace=${3:-20} waited=0
  kill -s "$signal" -- "-$pgid" 2>/dev/null || return 0
  while kill -0 -- "-$pgid" 2>/dev/null && ((waited < grace)); do sleep 1; waited=$((waited + 1)); done
  kill -s TERM -- "-$pgid" 2>/dev/null && sleep 3
  kill -s KILL -- "-$pgid" 2>/dev/null || true
}

ours_by_path() {  # pids whose command line names the temporary folder: servers the campaign left, if it died
  local dir pid args=()
  for dir in /proc/[0-9]*; do
    pid=${dir#/proc/}
    [[ $pid == "$$" || $pid == "$BASHPID" ]] && continue
    mapfile -d '' -t args 2>/dev/null <"$dir/cmdline" || continue
    [[ "${args[*]}" == *"$WORK"* ]] && echo "$pid"
  done
  return 0
}

stop_ours() {
  local pgid pids
  for pgid in "${GROUPS_STARTED[@]}"; do stop_group "$pgid" TERM 15; done
  [[ -n $WORK ]] || return 0
  pids=$(ours_by_path)
  [[ -z $pids ]] && return 0
  log "stopping what is left: $(tr '\n' ' ' <<<"$pids")"
  # shellcheck disable=SC2086  # one pid per word
  kill -s TERM $pids 2>/dev/null || true
  sleep 5
  pids=$(ours_by_path)
  # shellcheck disable=SC2086
  [[ -n $pids ]] && kill -s KILL $pids 2>/dev/null
  return 0
}

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  stop_ours || true
  if ((EMITTED == 0)); then
    case $status in
      130 | 143) emit_error "interrupted before the summary; everything it started is stopped" ;;
      *) emit_error "gpu_check stopped before its summary (exit $status); see stderr" ;;
    esac
    ((status == 0)) && status=1
  fi
  if [[ -n $WORK && -z ${ARBOR_GPU_CHECK_KEEP:-} ]]; then rm -rf -- "$WORK"; fi
  exit "$status"
}

# --- vLLM -----------------------------------------------------------------------------------------------------

install_vllm() {  # sets VLLM and ENGINE_VERSION
  local env=${ARBOR_VLLM_VENV:-}
  if [[ -z $env ]]; then
    env=$WORK/venv
    log "installing ${ARBOR_VLLM_SPEC:-vllm} into $env (pip's own index configuration)"
    python3 -m venv "$env"
    # No index option: pip reads PIP_INDEX_URL, PIP_EXTRA_INDEX_URL, pip.conf and find-links itself.
    timeout --kill-after=20 "$(budget 360)" "$env/bin/python" -m pip install --disable-pip-version-check \
      --progress-bar off "${ARBOR_VLLM_SPEC:-vllm}" >"$WORK/pip.log" 2>&1 ||
      { tail -n 20 "$WORK/pip.log"; return 1; }
  fi
  VLLM=$env/bin/vllm
  [[ -x $VLLM ]] || { log "no vllm executable in $env/bin"; return 1; }
  ENGINE_VERSION=$("$env/bin/python" - <<'PY'
from importlib import metadata
try:
    print(metadata.version("vllm"))
except metadata.PackageNotFoundError:
    pass
PY
)
  [[ -n $ENGINE_VERSION ]] || record_error "no vLLM distribution in $env: its version is unknown"
  log "vLLM ${ENGINE_VERSION:-?} at $VLLM"
}

free_port() { "$ARBOR_PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

wait_healthy() {  # until GET url answers 200, the group dies, or the seconds run out
  local url=$1 pgid=$2 seconds=$3 until=$((SECONDS + $3))
  while ((SECONDS < until)); do
    curl -sf -o /dev/null --max-time 5 "$url" && return 0
    kill -0 -- "-$pgid" 2>/dev/null || { log "the server exited before it was ready"; return 1; }
    sleep 2
  done
  log "not ready after ${seconds}s"
  return 1
}

serve_once() {  # serve the model, send it a few requests, stop it; under the kernel profiler when there is one
  local port base serve=() argv=() i
  port=$(free_port)
  base=http://127.0.0.1:$port
  serve=("$VLLM" serve "$MODEL" --host 127.0.0.1 --port "$port" --served-model-name "$SERVED" --enforce-eager
         --max-model-len 2048 --gpu-memory-utilization 0.5)
  mkdir -p "$WORK/kprof"
  case $KPROF in
    # %pid% keeps the API server's and the engine core's file sets apart (rocprofv3 writes one per process).
    rocprofv3) argv=(rocprofv3 --kernel-trace --stats -d "$WORK/kprof" -o "%pid%/arbor" --output-format csv --
                     "${serve[@]}") ;;
    # vLLM's profiling guide: follow the engine core across fork/exec, and trace CUDA graph nodes.
    nsys) argv=(env VLLM_WORKER_MULTIPROC_METHOD=spawn nsys profile --trace=cuda,nvtx --trace-fork-before-exec=true
                --cuda-graph-trace=node --force-overwrite=true -o "$WORK/kprof/arbor" "${serve[@]}") ;;
    *) argv=("${serve[@]}") ;;
  esac
  log "serving $MODEL once${KPROF:+ under $KPROF}"
  # A script's background commands start with SIGINT ignored, and exec keeps that: restore it, so the Ctrl-C
  # that stops the server below reaches vLLM and the profiler as it would from a terminal.
  setsid "$ARBOR_PY" -c 'import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL)
os.execvp(sys.argv[1], sys.argv[1:])' "${argv[@]}" >"$WORK/serve.log" 2>&1 &
  local pgid=$!
  GROUPS_STARTED+=("$pgid")
  if ! wait_healthy "$base/health" "$pgid" "$(budget 240)"; then
    tail -n 30 "$WORK/serve.log"
    stop_group "$pgid" INT 30
    return 1
  fi
  for i in 1 2 3 4 5 6 7 8; do
    curl -sf -o /dev/null --max-time 60 "$base/v1/completions" -H 'Content-Type: application/json' \
      -d "{\"model\": \"$SERVED\", \"prompt\": \"Request $i: the capital of France is\", \"max_tokens\": 32}" ||
      { log "request $i failed"; stop_group "$pgid" INT 30; return 1; }
  done
  # SIGINT, as Ctrl-C: vLLM shuts down cleanly and the profiler writes its files when the processes end.
  stop_group "$pgid" INT 90
  log "served 8 requests"
}

kernel_profile() {  # the kernel profiler's output in Arbor's schema, into $WORK/kernel_profile.json
  local target=$WORK/kprof
  if [[ $KPROF == nsys ]]; then
    [[ -f $WORK/kprof/arbor.nsys-rep ]] || { log "nsys wrote no report"; return 1; }
    timeout --kill-after=10 "$(budget 120)" nsys stats --report cuda_gpu_kern_sum --format csv --force-export=true \
      -o "$WORK/kprof/kern" "$WORK/kprof/arbor.nsys-rep" >"$WORK/nsys-stats.log" 2>&1 ||
      { tail -n 10 "$WORK/nsys-stats.log"; return 1; }
    target=$(find "$WORK/kprof" -maxdepth 1 -name 'kern*cuda_gpu_kern_sum*.csv' | head -n 1)
    [[ -n $target ]] || { log "nsys stats wrote no cuda_gpu_kern_sum CSV"; return 1; }
  fi
  "$ARBOR_PY" - "$KPROF" "$target" "$WORK/kernel_profile.json" <<'PY'
import json
import sys
from pathlib import Path

from arbor.tools.profiling.formats import detect_and_parse

tool, source, out = sys.argv[1:]
profile = detect_and_parse(Path(source))
Path(out).write_text(json.dumps({"tool": tool, "categories": profile.categories}))
PY
}

# --- the campaign ---------------------------------------------------------------------------------------------

write_campaign() {  # a 3-action campaign on the served model (wall clock $1 s): knobs that need only a restart
  cat >"$WORK/campaign.toml" <<EOF
# Written by scripts/gpu_check.sh: a short end-to-end check, not a tuning campaign.
name = "gpucheck"

[target]
stack = "vllm"
binary = "$VLLM"
model = "$MODEL"
served_model_name = "$SERVED"
base_args = ["--enforce-eager", "--max-model-len", "2048", "--gpu-memory-utilization", "0.5"]
hardware = "auto"
framework_version = "${ENGINE_VERSION:-unknown}"
ready_timeout_s = 240
stall_timeout_s = 180

[workload]
input_len = 64
output_len = 32
concurrency = 8
num_prompts = 16
sweep = [1, 8]
sweep_prompts_per_concurrency = 1
sweep_min_prompts = 4
warmup = 1

[gates]
accuracy = "parity"
min_agreement = 0.5

[budget]
wall_clock_s = $1
max_actions = $ACTIONS

[search]
min_repeats = 2
max_repeats = 2
baseline_repeats = 2
profile_seconds = 3

[agent]
backend = "offline"

[[knobs]]
name = "max_num_seqs"
flag = "--max-num-seqs"
type = "int"
min = 1
max = 65536
values = [16, 64]
category = "config"
layer = "scheduler"

[[knobs]]
name = "max_num_batched_tokens"
flag = "--max-num-batched-tokens"
type = "int"
min = 1
max = 10485760
values = [2048, 8192]
category = "config"
layer = "scheduler"

[[knobs]]
name = "enable_prefix_caching"
flag = "--enable-prefix-caching"
false_flag = "--no-enable-prefix-caching"
type = "bool"
bool_style = "pair"
values = [false]
category = "config"
layer = "kv_cache"
EOF
}

run_campaign() {  # arbor-host run, stopped by SIGTERM (it stops its servers) if the deadline comes first
  local host=${ARBOR_HOST:-$ROOT/.venv/bin/arbor-host} seconds
  [[ -x $host ]] || host=$(command -v arbor-host) || { log "no arbor-host"; return 1; }
  seconds=$(budget 480)
  # The campaign's own clock ends first, so it stops between actions and writes its report before the timeout.
  write_campaign $((seconds > 105 ? seconds - 45 : 60))
  log "campaign: $ACTIONS actions, at most ${seconds}s"
  local status=0
  setsid timeout --kill-after=60 "$seconds" "$host" run "$WORK/campaign.toml" --runs-dir "$WORK/runs" --fresh-kb \
    --max-actions "$ACTIONS" >"$WORK/campaign.log" 2>&1 &
  local pgid=$!
  GROUPS_STARTED+=("$pgid")
  wait "$pgid" || status=$?
  RUN_DIR=$(find "$WORK/runs" -mindepth 1 -maxdepth 1 -type d -name '*gpucheck*' 2>/dev/null | head -n 1)
  ((status == 0)) || { tail -n 30 "$WORK/campaign.log"; return 1; }
}

# --- the summary ----------------------------------------------------------------------------------------------

summarize() {  # the JSON line, from the run's report, its saved profiles and the kernel profile; 1 when not ok
  local line status=0
  line=$(GPU_VENDOR=$GPU_VENDOR GPU_NAME=$GPU_NAME ENGINE_VERSION=$ENGINE_VERSION MODEL=$MODEL RUN_DIR=$RUN_DIR \
    WORK=$WORK SECONDS_TAKEN=$SECONDS ACTIONS=$ACTIONS "$ARBOR_PY" - <<'PY'
import json
import os
import sys
from pathlib import Path

env = os.environ
work = Path(env["WORK"])
errors = [line for line in (work / "errors").read_text().splitlines() if line] if (work / "errors").exists() else []
run = Path(env["RUN_DIR"]) if env.get("RUN_DIR") else None
actions = kept = 0
categories = {}
if run is not None and (run / "report.json").is_file():
    report = json.loads((run / "report.json").read_text())
    actions, kept = report["summary"]["actions"], report["summary"]["kept"]
    errors += [f"campaign alert {a['kind']}: {a['message']}" for a in report.get("alerts", [])
               if a["kind"] == "profile_failed"]
elif run is not None or not errors:
    errors.append("the campaign wrote no report.json")
profiles = sorted((run / "profiles").glob("*.json"), key=lambda p: p.stat().st_mtime) if run else []
if profiles:  # the baseline's profile comes first
    saved = json.loads(profiles[0].read_text())
    categories["torch" if saved["tool"] == "torch.profiler" else saved["tool"]] = saved["categories"]
else:
    errors.append("no profile was saved by the campaign")
if (work / "kernel_profile.json").is_file():
    kernel = json.loads((work / "kernel_profile.json").read_text())
    categories[kernel["tool"]] = kernel["categories"]
if actions < int(env["ACTIONS"]) and not errors:
    errors.append(f"the campaign evaluated {actions} of {env['ACTIONS']} actions")
print(json.dumps({
    "ok": not errors, "gpu": env["GPU_VENDOR"], "gpu_name": env["GPU_NAME"], "engine": "vllm",
    "engine_version": env.get("ENGINE_VERSION") or None, "model": env["MODEL"], "actions": actions, "kept": kept,
    "profile_categories": {tool: {k: round(v, 4) for k, v in shares.items()} for tool, shares in categories.items()},
    "errors": errors, "seconds": int(env["SECONDS_TAKEN"]),
    "work_dir": str(work) if env.get("ARBOR_GPU_CHECK_KEEP") else None,
}))
sys.exit(1 if errors else 0)
PY
) || status=$?
  [[ -n $line ]] || return 1  # it failed before printing: the exit trap answers instead
  printf '%s\n' "$line" >&3
  EMITTED=1
  return "$status"
}

main() {
  local seconds=${ARBOR_GPU_CHECK_S:-570} status=0
  [[ $seconds =~ ^[0-9]+$ ]] || { emit_error "ARBOR_GPU_CHECK_S must be whole seconds, not '$seconds'"; exit 1; }
  DEADLINE=$((SECONDS + seconds))
  if ! detect_gpu; then
    emit_error "no GPU found: $NO_GPU_WHY"
    exit 2
  fi
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/arbor-gpu-check.XXXXXX")
  : >"$WORK/errors"
  ARBOR_PY=${ARBOR_PYTHON:-$ROOT/.venv/bin/python}
  [[ -x $ARBOR_PY ]] || ARBOR_PY=$(command -v python3)
  # One GPU: the first, unless the caller chose another.
  if [[ $GPU_VENDOR == nvidia ]]; then export CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-0}; fi
  if [[ $GPU_VENDOR == amd ]]; then export HIP_VISIBLE_DEVICES=${HIP_VISIBLE_DEVICES:-0}; fi
  pick_kernel_profiler
  if ! install_vllm; then
    record_error "installing vLLM failed (pip log above)"
  else
    serve_once || record_error "serving $MODEL failed (server log above)"
    if [[ -n $KPROF ]]; then kernel_profile || record_error "no $KPROF kernel profile"; fi
    if (($(remaining) < 150)); then
      record_error "no time left for the campaign"
    else
      run_campaign || record_error "the campaign failed (its log above)"
    fi
  fi
  summarize || status=1
  exit "$status"
}

main "$@"
