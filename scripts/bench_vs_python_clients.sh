#!/usr/bin/env bash
# Compare edgebench's HTTP load generator with the Python load generators guidellm and AIPerf, all
# against the same local nginx that answers instantly with a fixed OpenAI-compatible streaming
# response (16 content chunks, a usage chunk, [DONE]). So the numbers measure the clients, not a model.
#
# For each concurrency (interleaved: edgebench, guidellm, aiperf, one after another) it records the wall
# time and CPU seconds (user+sys of the whole process tree, /usr/bin/time) of the command, the client's
# own requests/s during the load (from its JSON output), the whole-run requests/s (completed / wall) and
# CPU seconds per 1,000 requests, and prints one table with ratios to edgebench at the same N.
#
# Installs, if missing: nginx (Debian package nginx-light) and /usr/bin/time (package time) with apt,
# and guidellm + aiperf from PyPI into a venv under ${XDG_CACHE_HOME:-~/.cache}/edgebench-peers/pyclients.
# No Hugging Face Hub access: both Python clients get a small byte-level BPE tokenizer trained locally
# (on Faker text, the same generator guidellm uses for synthetic prompts) and saved next to the venv.
#
# Environment (all optional):
#   EDGEBENCH        edgebench binary [/root/.cache/edgebench-ci/target/release/edgebench]
#   CONCURRENCIES    space-separated levels [1 16 128]
#   ROUNDS           rounds of the whole interleaved sweep [1]
#   EB_REQUESTS_C1   edgebench requests at concurrency 1 [10000]
#   EB_REQUESTS      edgebench requests at concurrency > 1 [50000]
#   PY_REQUESTS      requests for guidellm and AIPerf (they are 10-50x slower) [5000]; edgebench is also
#                    run at this N (row "edgebench@PY_N") so every Python row has a same-N reference
#   CLIENTS          which clients [edgebench guidellm aiperf]
#   RUN_TIMEOUT      seconds before one client run is killed [900]
#   PAUSE            seconds of pause between runs [2]
#   QUIET_TIMEOUT    before each run, wait up to this many seconds for the machine to be quiet (busy
#                    CPU below 10% of all cores for 1 s); a run started on a busy machine is flagged [120]
#   PY_CLIENTS_VENV  the venv [${XDG_CACHE_HOME:-$HOME/.cache}/edgebench-peers/pyclients]
#   KEEP_TMP=1       keep the temp folder (outputs of every run) and print its path
set -euo pipefail

EDGEBENCH=${EDGEBENCH:-/root/.cache/edgebench-ci/target/release/edgebench}
CONCURRENCIES=${CONCURRENCIES:-"1 16 128"}
ROUNDS=${ROUNDS:-1}
EB_REQUESTS_C1=${EB_REQUESTS_C1:-10000}
EB_REQUESTS=${EB_REQUESTS:-50000}
PY_REQUESTS=${PY_REQUESTS:-5000}
CLIENTS=${CLIENTS:-"edgebench guidellm aiperf"}
RUN_TIMEOUT=${RUN_TIMEOUT:-900}
PAUSE=${PAUSE:-2}
QUIET_TIMEOUT=${QUIET_TIMEOUT:-120}
VENV=${PY_CLIENTS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/edgebench-peers/pyclients}
TOKENIZER_DIR="$VENV/local-tokenizer-bpe2k"
MODEL_ID=mock-model
MAX_TOKENS=16
PROMPT_TOKENS=32

die() { echo "error: $*" >&2; exit 1; }
log() { echo "== $*"; }
show_cmd() { printf '$'; printf ' %q' "$@"; printf '\n'; }

for v in ROUNDS EB_REQUESTS_C1 EB_REQUESTS PY_REQUESTS RUN_TIMEOUT QUIET_TIMEOUT PAUSE; do
  [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number, got '${!v}'"
done
for c in $CONCURRENCIES; do [[ $c =~ ^[1-9][0-9]*$ ]] || die "CONCURRENCIES: '$c' is not a positive integer"; done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/eb-vs-py.XXXXXX")
chmod 755 "$TMP" # the nginx worker (www-data when started as root) reads the bodies from here
NGINX_PID=""
POLICY_RC_CREATED=""
cleanup() {
  local rc=$?
  if [[ -n $NGINX_PID ]] && kill -0 "$NGINX_PID" 2>/dev/null; then
    kill -QUIT "$NGINX_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$NGINX_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$NGINX_PID" 2>/dev/null || true
  fi
  [[ -n $POLICY_RC_CREATED ]] && rm -f /usr/sbin/policy-rc.d
  if [[ ${KEEP_TMP:-0} == 1 ]]; then echo "kept temp folder: $TMP"; else rm -rf "$TMP"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

stat_cpu() { awk '/^cpu /{print $2+$3+$4+$7+$8, $9; exit}' /proc/stat; } # busy ticks, steal ticks
read -r BUSY0 STEAL0 < <(stat_cpu)
TOTAL0=$(awk '/^cpu /{s=0; for(i=2;i<=NF;i++) s+=$i; print s; exit}' /proc/stat)
CLK_TCK=$(getconf CLK_TCK)
SCRIPT_START=$(date +%s)

# ---------------------------------------------------------------------------------------------- apt
apt_install() { # pkg...
  local need_policy=""
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    # keep the package's postinst from starting a system nginx on port 80
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
    POLICY_RC_CREATED=1; need_policy=1
  fi
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >"$TMP/apt.log" 2>&1; then
    apt-get update -qq >>"$TMP/apt.log" 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >>"$TMP/apt.log" 2>&1 ||
      { tail -5 "$TMP/apt.log" >&2; die "apt-get install $* failed"; }
  fi
  if [[ -n $need_policy ]]; then rm -f /usr/sbin/policy-rc.d; POLICY_RC_CREATED=""; fi
}
[[ $(id -u) == 0 ]] || { command -v nginx >/dev/null && [[ -x /usr/bin/time ]]; } ||
  die "not root and nginx or /usr/bin/time is missing (apt-get install nginx-light time)"
command -v nginx >/dev/null || PATH=$PATH:/usr/sbin
if ! command -v nginx >/dev/null; then log "installing nginx-light (apt)"; apt_install nginx-light; fi
[[ -x /usr/bin/time ]] || { log "installing time (apt)"; apt_install time; }
command -v curl >/dev/null || { log "installing curl (apt)"; apt_install curl; }
command -v python3 >/dev/null || die "python3 is required (for the venv and the report)"

# ------------------------------------------------------------------------------- the instant server
SRV="$TMP/nginx"
mkdir -p "$SRV/logs" "$SRV/tmp"
chmod 755 "$SRV"
python3 - "$SRV" "$MODEL_ID" "$MAX_TOKENS" <<'EOF'
import json, sys
out, model, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
def sse(objs):
    return "".join("data: " + json.dumps(o, separators=(",", ":")) + "\n\n" for o in objs) + "data: [DONE]\n\n"
usage = {"prompt_tokens": 10, "completion_tokens": n, "total_tokens": 10 + n}
chat = [{"id": "x", "object": "chat.completion.chunk", "model": model,
         "choices": [{"index": 0, "delta": {"content": "tok "}, "finish_reason": "length" if i == n - 1 else None}]}
        for i in range(n)]
chat.append({"id": "x", "object": "chat.completion.chunk", "model": model, "choices": [], "usage": usage})
comp = [{"id": "x", "object": "text_completion", "model": model,
         "choices": [{"index": 0, "text": "tok ", "finish_reason": "length" if i == n - 1 else None}]}
        for i in range(n)]
comp.append({"id": "x", "object": "text_completion", "model": model, "choices": [], "usage": usage})
open(f"{out}/chat.sse", "w").write(sse(chat))
open(f"{out}/completions.sse", "w").write(sse(comp))
open(f"{out}/models.json", "w").write(json.dumps({"object": "list", "data": [{"id": model, "object": "model"}]}))
EOF
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$SRV/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $SRV/nginx.pid;
error_log $SRV/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $SRV/tmp/body;
  proxy_temp_path $SRV/tmp/proxy;
  fastcgi_temp_path $SRV/tmp/fastcgi;
  uwsgi_temp_path $SRV/tmp/uwsgi;
  scgi_temp_path $SRV/tmp/scgi;
  keepalive_requests 10000000;
  keepalive_timeout 75s;
  client_max_body_size 16m;
  server {
    listen 127.0.0.1:$PORT backlog=4096;
    # static files: a POST to them is a 405, which error_page turns into a 200 GET of the same file
    location = /v1/models           { default_type application/json;  alias $SRV/models.json; }
    location = /v1/chat/completions { default_type text/event-stream; alias $SRV/chat.sse;        error_page 405 =200 \$uri; }
    location = /v1/completions      { default_type text/event-stream; alias $SRV/completions.sse; error_page 405 =200 \$uri; }
    location = /health              { return 200 'ok'; }
  }
}
EOF
NGINX_CMD=(nginx -p "$SRV" -e "$SRV/logs/error.log" -c "$SRV/nginx.conf")
log "instant server: nginx $(nginx -v 2>&1 | sed 's|.*/||') on 127.0.0.1:$PORT (1 worker)"
show_cmd "${NGINX_CMD[@]}"
"${NGINX_CMD[@]}" >"$SRV/logs/stdout.log" 2>&1 &
NGINX_PID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break; sleep 0.1; done
kill -0 "$NGINX_PID" 2>/dev/null || { cat "$SRV/logs/error.log" "$SRV/logs/stdout.log" >&2; die "nginx did not start"; }
curl -sf "http://127.0.0.1:$PORT/v1/models" | grep -q "\"$MODEL_ID\"" || die "GET /v1/models did not list $MODEL_ID"
PROBE=$(curl -sfN -X POST -H 'Content-Type: application/json' \
  -d "{\"model\":\"$MODEL_ID\",\"stream\":true,\"max_tokens\":$MAX_TOKENS,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}" \
  -D "$TMP/probe.headers" "http://127.0.0.1:$PORT/v1/chat/completions") || die "streaming POST /v1/chat/completions failed"
grep -qi '^content-type: text/event-stream' "$TMP/probe.headers" || die "the server's Content-Type is not text/event-stream"
[[ $(grep -c '^data: ' <<<"$PROBE") == $((MAX_TOKENS + 2)) && $(tail -n1 <<<"$PROBE") == 'data: [DONE]' ]] ||
  die "the streaming POST did not return $MAX_TOKENS chunks + usage + [DONE]"
log "verified: streaming POST returns $((MAX_TOKENS + 2)) events ($MAX_TOKENS content, 1 usage, [DONE]), text/event-stream"

# nginx CPU ticks (master + worker)
server_ticks() {
  local t=0 p
  for p in "$NGINX_PID" $(cat "/proc/$NGINX_PID/task/$NGINX_PID/children" 2>/dev/null); do
    [[ -r /proc/$p/stat ]] && t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat")))
  done
  echo "$t"
}

# --------------------------------------------------------------------------------- Python clients
declare -A MISSING=()
INSTALL_NOTES=()
PY="$VENV/bin/python"
want() { [[ " $CLIENTS " == *" $1 "* ]]; }
if want guidellm || want aiperf; then
  if [[ ! -x $PY ]]; then
    log "creating venv $VENV"
    if ! { mkdir -p "$(dirname "$VENV")" && python3 -m venv "$VENV"; } >"$TMP/venv.log" 2>&1; then
      MISSING[guidellm]="could not create the venv $VENV: $(tail -1 "$TMP/venv.log")"; MISSING[aiperf]=${MISSING[guidellm]}
    fi
  fi
  for pkg in guidellm aiperf; do
    want "$pkg" || continue
    [[ -n ${MISSING[$pkg]:-} ]] && continue
    if "$PY" -c "import importlib.metadata as m; m.version('$pkg')" >/dev/null 2>&1; then
      note=$(cat "$VENV/.install-time-$pkg" 2>/dev/null || echo "install time not recorded")
      INSTALL_NOTES+=("$pkg $("$PY" -c "import importlib.metadata as m; print(m.version('$pkg'))"): already in the venv (first install: $note)")
      continue
    fi
    log "pip install $pkg (into $VENV)"
    t0=$(date +%s.%N)
    if "$PY" -m pip install -q "$pkg" >"$TMP/pip-$pkg.log" 2>&1; then
      secs=$(python3 -c "import sys; print(f'{float(sys.argv[2])-float(sys.argv[1]):.0f} s')" "$t0" "$(date +%s.%N)")
      echo "$secs on $(date -u +%F)" >"$VENV/.install-time-$pkg"
      INSTALL_NOTES+=("$pkg $("$PY" -c "import importlib.metadata as m; print(m.version('$pkg'))"): installed in $secs")
    else
      MISSING[$pkg]="pip install $pkg failed: $(grep -m1 -iE 'error' "$TMP/pip-$pkg.log" || tail -1 "$TMP/pip-$pkg.log")"
    fi
  done
  # a local tokenizer, so nothing asks the Hugging Face Hub (this machine cannot reach it)
  if [[ -x $PY && ! -f $TOKENIZER_DIR/tokenizer.json ]] && { want guidellm || want aiperf; }; then
    log "training a local byte-level BPE tokenizer (2,000 tokens, on Faker text) into $TOKENIZER_DIR"
    HF_HUB_OFFLINE=1 "$PY" - "$TOKENIZER_DIR" >"$TMP/tokenizer.log" 2>&1 <<'EOF' || true
import sys
from faker import Faker
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast
f = Faker(); f.seed_instance(0)
tok = Tokenizer(models.BPE())
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
tok.decoder = decoders.ByteLevel()
tok.train_from_iterator((f.text(max_nb_chars=2000) for _ in range(500)), trainers.BpeTrainer(
    vocab_size=2000, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    show_progress=False))
PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", bos_token="<|endoftext|>",
                        unk_token="<|endoftext|>").save_pretrained(sys.argv[1])
EOF
    if [[ ! -f $TOKENIZER_DIR/tokenizer.json ]]; then
      why="could not build the local tokenizer: $(tail -1 "$TMP/tokenizer.log")"
      for pkg in guidellm aiperf; do [[ -n ${MISSING[$pkg]:-} ]] || MISSING[$pkg]=$why; done
    fi
  fi
fi
EB_VERSION=$("$EDGEBENCH" --version 2>/dev/null | awk '{print $2, $3}') || EB_VERSION="?" # read before the runs
if want edgebench && [[ ! -x $EDGEBENCH ]]; then MISSING[edgebench]="binary not found at $EDGEBENCH (build it: cargo build --release)"; fi

# ------------------------------------------------------------------------------------------ runs
# parse.py CLIENT PATH -> "completed reported_req_per_s", from each client's own JSON output
cat >"$TMP/parse.py" <<'EOF'
import glob, json, sys
kind, path = sys.argv[1], sys.argv[2]
if kind == "edgebench":
    u = json.load(open(sorted(glob.glob(path + "/summary_*.json"))[-1]))["models"][0]["units"][0]
    print(u["successes"], u["request_throughput_per_s"])
elif kind == "guidellm":
    b = json.load(open(path))["benchmarks"][0]
    print(b["scheduler_metrics"]["requests_made"]["successful"],
          b["metrics"]["requests_per_second"]["successful"]["mean"])
elif kind == "aiperf":
    d = json.load(open(path))
    errors = (d.get("error_request_count") or {}).get("avg") or 0
    print(int(d["request_count"]["avg"] - errors), d["request_throughput"]["avg"])
EOF
RESULTS="$TMP/results.tsv" # round client label conc asked completed reported wall user sys server_s busy_s quiet status
: >"$RESULTS"

# wait_quiet: wait (up to QUIET_TIMEOUT s) until the machine's busy CPU stays below 10% of all cores for
# 1 s; sets RUN_QUIET to yes/no
NCPU=$(nproc)
wait_quiet() {
  local deadline=$(( $(date +%s) + QUIET_TIMEOUT )) a b
  while :; do
    read -r a _ < <(stat_cpu); sleep 1; read -r b _ < <(stat_cpu)
    if (( (b - a) * 100 < CLK_TCK * NCPU * 10 )); then RUN_QUIET=yes; return; fi
    if (( $(date +%s) >= deadline )); then
      RUN_QUIET=no
      echo "   warning: the machine is still busy ($(( (b - a) * 100 / CLK_TCK ))% of one core used by other processes) after ${QUIET_TIMEOUT} s; running anyway (flagged)" >&2
      return
    fi
  done
}

# run_timed NAME DIR CMD... : runs CMD in its own process group under /usr/bin/time, in DIR
run_timed() {
  local name=$1 dir=$2; shift 2
  mkdir -p "$dir"
  show_cmd "$@"
  local s0 b0 s1 b1 rc=0
  wait_quiet
  s0=$(server_ticks); read -r b0 _ < <(stat_cpu)
  (cd "$dir" && exec setsid /usr/bin/time -o "$dir/time.txt" -f '%e %U %S' timeout -k 10 "$RUN_TIMEOUT" "$@" >"$dir/stdout.log" 2>"$dir/stderr.log") &
  local pid=$!
  wait "$pid" || rc=$?
  s1=$(server_ticks); read -r b1 _ < <(stat_cpu)
  # anything the client left running in its process group is ended here (by that group's id only)
  if kill -0 -- "-$pid" 2>/dev/null; then
    echo "   note: $name left processes behind in its process group; ending them" >&2
    kill -TERM -- "-$pid" 2>/dev/null || true; sleep 1; kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  RUN_RC=$rc
  RUN_SERVER_S=$(awk -v a="$s0" -v b="$s1" -v h="$CLK_TCK" 'BEGIN{printf "%.3f", (b-a)/h}')
  RUN_BUSY_S=$(awk -v a="$b0" -v b="$b1" -v h="$CLK_TCK" 'BEGIN{printf "%.3f", (b-a)/h}')
  read -r RUN_WALL RUN_USER RUN_SYS < <(grep -E '^[0-9.]+ [0-9.]+ [0-9.]+$' "$dir/time.txt" | tail -1) ||
    { RUN_WALL=0 RUN_USER=0 RUN_SYS=0; }
}

record() { # round client label conc asked completed reported status
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" "$6" "$7" \
    "$RUN_WALL" "$RUN_USER" "$RUN_SYS" "$RUN_SERVER_S" "$RUN_BUSY_S" "$RUN_QUIET" "$8" >>"$RESULTS"
  echo "   -> $2 c=$4: $6/$5 completed, reported $7 req/s, wall $RUN_WALL s, cpu ${RUN_USER}u+${RUN_SYS}s, status $8"
}

fail_reason() { # dir
  local f
  if [[ $RUN_RC == 124 || $RUN_RC == 137 ]]; then echo "timed out after RUN_TIMEOUT=${RUN_TIMEOUT} s"; return; fi
  for f in "$1/stderr.log" "$1/stdout.log"; do
    grep -m1 -E 'Error|error|ERROR|Traceback|failed' "$f" 2>/dev/null | cut -c1-160 && return
  done
  echo "exit code $RUN_RC"
}

run_edgebench() { # round conc n label
  local r=$1 c=$2 n=$3 label=$4 dir="$TMP/r$1/edgebench-c$2-n$3"
  run_timed edgebench "$dir" "$EDGEBENCH" run --endpoint "http://127.0.0.1:$PORT/v1" --models "$MODEL_ID" \
    --scenarios interactive_assistant --runs "$n" --warmup 0 --cooldown 0 --max-tokens "$MAX_TOKENS" \
    --concurrency "$c" --settle-timeout 0 --results "$dir/results" --no-checkpoint
  local out
  out=$(python3 "$TMP/parse.py" edgebench "$dir/results" 2>/dev/null) || out=""
  if [[ $RUN_RC == 0 && -n $out ]]; then record "$r" edgebench "$label" "$c" "$n" ${out% *} ${out#* } ok
  else record "$r" edgebench "$label" "$c" "$n" 0 0 "failed: $(fail_reason "$dir")"; fi
}

run_guidellm() { # round conc n
  local r=$1 c=$2 n=$3 dir="$TMP/r$1/guidellm-c$2-n$3"
  HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 \
  run_timed guidellm "$dir" "$VENV/bin/guidellm" run \
    --backend "kind=openai_http,target=http://127.0.0.1:$PORT,model=$MODEL_ID" \
    --profile "kind=concurrent,streams=$c" --constraint "kind=max_requests,count=$n" \
    --data "kind=synthetic_text,prompt_tokens=$PROMPT_TOKENS,output_tokens=$MAX_TOKENS" \
    --tokenizer "kind=hf_auto,model=$TOKENIZER_DIR" --output "kind=json,path=$dir/benchmarks.json" \
    --disable-console
  local out
  out=$(python3 "$TMP/parse.py" guidellm "$dir/benchmarks.json" 2>/dev/null) || out=""
  if [[ $RUN_RC == 0 && -n $out ]]; then record "$r" guidellm guidellm "$c" "$n" ${out% *} ${out#* } ok
  else record "$r" guidellm guidellm "$c" "$n" 0 0 "failed: $(fail_reason "$dir")"; fi
}

run_aiperf() { # round conc n
  local r=$1 c=$2 n=$3 dir="$TMP/r$1/aiperf-c$2-n$3"
  # not HF_HUB_OFFLINE: in offline mode aiperf looks a local tokenizer path up as a Hub repo id and fails;
  # HF_ENDPOINT points at a closed local port instead, so any Hub call would fail at once
  HF_ENDPOINT=http://127.0.0.1:9 HF_HUB_DISABLE_TELEMETRY=1 HF_DATASETS_OFFLINE=1 \
  run_timed aiperf "$dir" "$VENV/bin/aiperf" profile --model "$MODEL_ID" --url "http://127.0.0.1:$PORT" \
    --endpoint-type chat --streaming --concurrency "$c" --request-count "$n" \
    --synthetic-input-tokens-mean "$PROMPT_TOKENS" --output-tokens-mean "$MAX_TOKENS" \
    --tokenizer "$TOKENIZER_DIR" --use-server-token-count --random-seed 42 \
    --artifact-dir "$dir/artifacts" --ui-type none
  local out
  out=$(python3 "$TMP/parse.py" aiperf "$dir/artifacts/profile_export_aiperf.json" 2>/dev/null) || out=""
  if [[ $RUN_RC == 0 && -n $out ]]; then record "$r" aiperf aiperf "$c" "$n" ${out% *} ${out#* } ok
  else record "$r" aiperf aiperf "$c" "$n" 0 0 "failed: $(fail_reason "$dir")"; fi
}

for client in $CLIENTS; do
  [[ -n ${MISSING[$client]:-} ]] && echo "!! $client is left out: ${MISSING[$client]}"
done
for r in $(seq "$ROUNDS"); do
  for c in $CONCURRENCIES; do
    if [[ $c == 1 ]]; then n_eb=$EB_REQUESTS_C1; else n_eb=$EB_REQUESTS; fi
    for client in $CLIENTS; do
      [[ -n ${MISSING[$client]:-} ]] && continue
      case $client in
        edgebench)
          log "round $r, concurrency $c: edgebench, $n_eb requests"
          run_edgebench "$r" "$c" "$n_eb" edgebench; sleep "$PAUSE"
          if [[ $PY_REQUESTS != "$n_eb" ]] && { want guidellm || want aiperf; }; then
            log "round $r, concurrency $c: edgebench, $PY_REQUESTS requests (same N as the Python clients)"
            run_edgebench "$r" "$c" "$PY_REQUESTS" "edgebench@PY_N"; sleep "$PAUSE"
          fi ;;
        guidellm) log "round $r, concurrency $c: guidellm, $PY_REQUESTS requests"; run_guidellm "$r" "$c" "$PY_REQUESTS"; sleep "$PAUSE" ;;
        aiperf) log "round $r, concurrency $c: aiperf, $PY_REQUESTS requests"; run_aiperf "$r" "$c" "$PY_REQUESTS"; sleep "$PAUSE" ;;
        *) echo "!! unknown client '$client' (edgebench, guidellm, aiperf)"; ;;
      esac
    done
  done
done

# ---------------------------------------------------------------------------------------- report
read -r BUSY1 STEAL1 < <(stat_cpu)
TOTAL1=$(awk '/^cpu /{s=0; for(i=2;i<=NF;i++) s+=$i; print s; exit}' /proc/stat)
echo
echo "================================================================================================"
echo "edgebench vs Python load generators, against one instant nginx (127.0.0.1, ${MAX_TOKENS}-chunk SSE reply)"
echo "machine: $(nproc) CPUs, $(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo), $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r)"
echo "date: $(date -u '+%F %T UTC'), script wall time $(( $(date +%s) - SCRIPT_START )) s"
awk -v s0="$STEAL0" -v s1="$STEAL1" -v t0="$TOTAL0" -v t1="$TOTAL1" -v h="$CLK_TCK" \
  'BEGIN{printf "hypervisor steal over the script: %.2f CPU-s (%.2f%% of all CPU time)\n", (s1-s0)/h, (t1>t0)?100*(s1-s0)/(t1-t0):0}'
echo "versions: edgebench $EB_VERSION, nginx $(nginx -v 2>&1 | sed 's|.*/||')$(
  for p in guidellm aiperf; do [[ -x $PY ]] && v=$("$PY" -c "import importlib.metadata as m; print(m.version('$p'))" 2>/dev/null) && printf ', %s %s' "$p" "$v"; done
  [[ -x $PY ]] && printf ', Python %s' "$("$PY" -c 'import platform; print(platform.python_version())')")"
for note in "${INSTALL_NOTES[@]}"; do echo "install: $note"; done
for client in $CLIENTS; do [[ -n ${MISSING[$client]:-} ]] && echo "missing: $client: ${MISSING[$client]}"; done
python3 - "$RESULTS" "$ROUNDS" "$NCPU" <<'EOF'
import statistics, sys
from collections import defaultdict
rows = []
for line in open(sys.argv[1]):
    r, client, label, c, asked, done, rep, wall, user, sys_, srv, busy, quiet, status = line.rstrip("\n").split("\t")
    rows.append(dict(round=int(r), client=client, label=label, c=int(c), asked=int(asked), done=int(done),
                     rep=float(rep), wall=float(wall), cpu=float(user) + float(sys_), srv=float(srv),
                     busy=float(busy), quiet=quiet == "yes", status=status))
if not rows:
    print("no runs"); sys.exit(0)
rounds = int(sys.argv[2])
NCPU = int(sys.argv[3])
def fmt(x, p=0):
    return "-" if x is None else f"{x:,.{p}f}"
def derived(x):
    ok = x["status"] == "ok" and x["done"] > 0 and x["wall"] > 0
    x["run_rps"] = x["done"] / x["wall"] if ok else None
    x["cpu_1k"] = x["cpu"] / x["done"] * 1000 if ok else None
    x["srv_1k"] = x["srv"] / x["done"] * 1000 if ok else None
    # machine busy CPU not seen by /usr/bin/time nor in nginx: other processes, or client processes
    # that escaped the accounting (not waited for by their parent)
    x["other"] = max(0.0, x["busy"] - x["cpu"] - x["srv"]) if ok else None
    # flagged: started on a busy machine, or others took more than 5% of the machine during the run
    x["flag"] = ok and (not x["quiet"] or x["other"] > max(0.25, 0.05 * x["wall"] * NCPU))
for x in rows: derived(x)
def ref(x, pool):
    """the edgebench row of the same round, concurrency and N"""
    for y in pool:
        if y["client"] == "edgebench" and y["round"] == x["round"] and y["c"] == x["c"] and y["asked"] == x["asked"] and y["status"] == "ok":
            return y
    return None
def ratio(a, b):
    return f"{a / b:.3f}x" if a is not None and b else "-"
hdr = ["round", "client", "conc", "completed/sent", "reported req/s", "whole-run req/s", "wall s", "CPU s/1k req",
       "server CPU s/1k", "other CPU s", "rep req/s vs eb", "run req/s vs eb", "CPU/1k vs eb"]
def table(rs, show_round):
    out = []
    for x in rs:
        e = ref(x, rs)
        out.append([str(x["round"]), x["label"], str(x["c"]), f'{x["done"]:,}/{x["asked"]:,}',
                    fmt(x["rep"] if x["status"] == "ok" else None), fmt(x["run_rps"]), fmt(x["wall"], 2),
                    fmt(x["cpu_1k"], 3), fmt(x["srv_1k"], 3), fmt(x["other"], 1) + ("!" if x.get("flag") else ""),
                    ratio(x["rep"], e["rep"]) if e and x["status"] == "ok" else "-",
                    ratio(x["run_rps"], e["run_rps"]) if e else "-",
                    ratio(x["cpu_1k"], e["cpu_1k"]) if e else "-"])
    cols = list(range(len(hdr))) if show_round else list(range(1, len(hdr)))
    w = [max(len(hdr[i]), *(len(o[i]) for o in out)) for i in cols]
    print("  ".join(hdr[i].ljust(w[k]) if i < 2 else hdr[i].rjust(w[k]) for k, i in enumerate(cols)))
    print("  ".join("-" * x for x in w))
    for o in out:
        print("  ".join(o[i].ljust(w[k]) if i < 2 else o[i].rjust(w[k]) for k, i in enumerate(cols)))
    if any(x.get("flag") for x in rs):
        print("! = run disturbed: started on a busy machine, or other processes used more than 5% of all cores (and 0.25 CPU-s) during it")
    for x in rs:
        if x["status"] != "ok":
            print(f'failed: round {x["round"]} {x["label"]} c={x["c"]}: {x["status"]}')
print()
table(rows, rounds > 1)
if rounds > 1:
    groups = defaultdict(list)
    for x in rows:
        if x["status"] == "ok":
            groups[(x["label"], x["c"], x["asked"])].append(x)
    med = []
    for (label, c, asked), xs in groups.items():
        m = dict(xs[0]); m["round"] = 0
        for k in ("done", "rep", "wall", "cpu", "srv", "busy"):
            m[k] = statistics.median(y[k] for y in xs)
        m["quiet"] = all(y["quiet"] for y in xs)
        m["done"] = int(m["done"]); derived(m); med.append(m)
    print(f"\nmedians over {rounds} rounds:")
    table(med, False)
print("""
reported req/s: the client's own figure for the load phase (edgebench: request_throughput_per_s of the
  summary JSON; guidellm: metrics.requests_per_second.successful.mean; AIPerf: request_throughput.avg).
whole-run req/s: completed requests / wall time of the whole command (start-up, data generation, reports).
CPU s/1k req: user+sys seconds of the client's process tree (/usr/bin/time) per 1,000 completed requests.
server CPU s/1k: nginx's CPU per 1,000 requests during that run; other CPU s: machine-wide busy CPU during
  the run not counted in either (other processes, or client processes that escaped the accounting).
ratios: client / edgebench at the same round, concurrency and N (the "edgebench@PY_N" row when the Python
  clients run fewer requests than edgebench). req/s ratios below 1 and CPU ratios above 1 favour edgebench.
Python clients ran PY_REQUESTS requests each (they are slower); their fixed start-up cost (imports,
  worker processes, tokenizer, data generation) is spread over that N in the whole-run and CPU columns.""")
EOF
