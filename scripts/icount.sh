#!/usr/bin/env bash
# Instructions a proxied request costs, counted by callgrind per thread: the gateway's runtime
# thread (what a request waits on) and the blocking threads (history writer, snapshots).
# Counts repeat within 0.5% between runs, where CPU times on a shared machine vary by 15%, so a
# change of a few percent can be judged. Not a benchmark of speed: use scripts/bench.sh for that.
#
#   scripts/icount.sh [requests]        (needs valgrind and oha; builds the release binary)
#   STREAM=1 scripts/icount.sh          streamed answers (SSE) instead of plain ones
#   BODY_KB=16 scripts/icount.sh        requests carrying a conversation of about 16 KiB
#   KEEP=1 scripts/icount.sh            keeps the profiles for callgrind_annotate
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-2000}
command -v valgrind >/dev/null || { echo "icount: needs valgrind (apt-get install valgrind)"; exit 1; }
command -v oha >/dev/null || { echo "icount: needs oha (cargo install oha --locked)"; exit 1; }
cargo build --release --quiet
bin=target/release/llmgw
dir=$(mktemp -d)
mock_port=19301
gw_port=19302
cleanup() {
  kill "${mock_pid:-}" "${vg_pid:-}" 2>/dev/null || true
  wait 2>/dev/null || true
  [ -n "${KEEP:-}" ] || rm -rf "$dir"
}
trap cleanup EXIT

"$bin" mock --listen "127.0.0.1:$mock_port" --name bench --latency-ms 0 --jitter-ms 0 \
  --tokens-per-s 0 --reply-tokens 16 >"$dir/mock.log" 2>&1 &
mock_pid=$!
cat >"$dir/gw.toml" <<EOF
[server]
listen = "127.0.0.1:$gw_port"
admin_listen = "127.0.0.1:0"
data_dir = "$dir/data"
workers = 1
[[providers]]
name = "bench"
base_url = "http://127.0.0.1:$mock_port/v1"
[[routes]]
model = "chat"
targets = [{ provider = "bench", model = "sim-chat" }]
EOF
stream=false
[ -z "${STREAM:-}" ] || stream=true
if [ -n "${BODY_KB:-}" ]; then
  python3 scripts/conversation.py "$BODY_KB" chat $([ "$stream" = true ] && echo stream) >"$dir/req.json"
else
  echo '{"model":"chat","stream":'$stream',"messages":[{"role":"user","content":"hi"}]}' >"$dir/req.json"
fi

RUST_LOG=warn valgrind --tool=callgrind --separate-threads=yes --instr-atstart=no \
  --callgrind-out-file="$dir/cg.out" "$bin" serve -c "$dir/gw.toml" >"$dir/vg.log" 2>&1 &
vg_pid=$!
url="http://127.0.0.1:$gw_port/v1/chat/completions"
for _ in $(seq 300); do
  curl -s -o /dev/null "http://127.0.0.1:$gw_port/healthz" && break
  sleep 0.2
done
status=$(curl -s -o /dev/null -w '%{http_code}' -H 'content-type: application/json' -d @"$dir/req.json" "$url")
# An error is cheap to proxy: counting one would look like a saving.
[ "$status" = 200 ] || { echo "icount: the gateway answered $status, not 200"; exit 1; }
load() { oha -n "$1" -c 8 --no-tui -m POST -H 'content-type: application/json' -D "$dir/req.json" "$url" >/dev/null 2>&1; }
load 500
callgrind_control -i on "$vg_pid" >/dev/null 2>&1
load "$n"
callgrind_control -d "$vg_pid" >/dev/null 2>&1
sleep 1
echo "instructions a request (user space), $n $([ "$stream" = true ] && echo streamed || echo plain) requests over 8 connections:"
for f in "$dir"/cg.out.*-*; do
  total=$(grep -E '^(summary|totals):' "$f" | head -1 | awk '{print $2}')
  per=$(( ${total:-0} / n ))
  [ "$per" -ge 100 ] || continue
  thread=${f##*-}
  case $thread in 01) what="runtime thread (requests)" ;; *) what="thread $thread (blocking pool)" ;; esac
  printf '  %-28s %8d\n' "$what" "$per"
done
[ -z "${KEEP:-}" ] || echo "profiles: $dir/cg.out.1-* (callgrind_annotate --inclusive=yes FILE)"
