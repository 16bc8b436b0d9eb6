#!/usr/bin/env bash
# The proxy's cost, measured in one run on this machine: a simulated provider that answers at
# once, reached directly, through nginx as a plain reverse proxy (the ceiling for any HTTP
# gateway; installed if missing and apt-get can) and through llmgw, each with the same load:
#   - non-streamed answers, open loop at 1000 and 5000 req/s, then closed loop at maximum
#     throughput (64 keep-alive connections);
#   - streamed answers at maximum throughput (64 connections), and one stream after another on one
#     reused connection (time to first byte and to the end: the Nagle/delayed-ACK signature);
#   - 1000 streams held open at once from a slow provider (errors, the gateway's peak memory);
#   - cache hits against the fastest generating provider;
#   - the store (examples/store_bench.rs): a million history records through the real writer
#     task (records/s, size on disk), and the gateway's startup to a first served request with
#     an empty store and with those records.
# Prints tables with ratios against direct, and writes a machine-readable summary to
# target/bench-summary.json. Needs oha (`cargo install oha --locked`).
# On a shared machine one run varies by a quarter: with ROUNDS > 1 the JSON and stream runs are
# repeated, the three paths interleaved in each round (in an order that rotates from round to
# round), and each figure is the median of its rounds.
# llmgw and nginx get the same number of worker threads / processes: WORKERS, default 1 (the
# load generator and the providers share this machine's cores).
# BODY_KB=n sends requests carrying a conversation of about n KiB instead of one word (one stream
# after another on one connection keeps its small request).
#   [WORKERS=n] [BODY_KB=n] [STORE_RECORDS=n] scripts/bench.sh [seconds per run, default 10] [rounds, default 1]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
rounds=${2:-1}
workers=${WORKERS:-1}
# oha takes a request's body as one argument, which Linux bounds at 128 KiB.
if [ -n "${BODY_KB:-}" ] && ! { [ "$BODY_KB" -ge 1 ] && [ "$BODY_KB" -le 100 ]; } 2>/dev/null; then
  echo "BODY_KB must be a whole number of KiB from 1 to 100" >&2
  exit 2
fi
command -v oha >/dev/null || { echo "oha not found: cargo install oha --locked" >&2; exit 1; }
if ! command -v nginx >/dev/null && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null) ||
    echo "nginx could not be installed: measuring without it" >&2
fi
cargo build --release --quiet --bin llmgw --example stream_probe --example store_bench
bin=target/release/llmgw
probe=target/release/examples/stream_probe
store_bench=target/release/examples/store_bench
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null; rm -rf "$work"' EXIT

"$bin" mock --listen 127.0.0.1:19001 --name bench --latency-ms 0 --jitter-ms 0 --tokens-per-s 0 --reply-tokens 16 \
  >"$work/mock.log" 2>&1 &
# The fastest simulated provider with generation time: 0 ms before the first byte, 300 tokens/s.
"$bin" mock --listen 127.0.0.1:19002 --name gen --latency-ms 0 --jitter-ms 0 --tokens-per-s 300 --reply-tokens 16 \
  >"$work/mock2.log" 2>&1 &
# A slow one, for streams held open: 40 tokens at 20 tokens/s, 2 s each.
"$bin" mock --listen 127.0.0.1:19003 --name slow --latency-ms 0 --jitter-ms 0 --tokens-per-s 20 --reply-tokens 40 \
  >"$work/mock3.log" 2>&1 &
cat >"$work/gw.toml" <<TOML
[server]
listen = "127.0.0.1:19080"
admin_listen = "127.0.0.1:0"
data_dir = "$work/data"
max_connections = 8192
workers = $workers
[[providers]]
name = "bench"
base_url = "http://127.0.0.1:19001/v1"
[[providers]]
name = "gen"
base_url = "http://127.0.0.1:19002/v1"
[[providers]]
name = "slow"
base_url = "http://127.0.0.1:19003/v1"
[[routes]]
model = "chat"
targets = [{ provider = "bench", model = "sim-chat" }]
[[routes]]
model = "cached"
cache = { enabled = true }
targets = [{ provider = "gen", model = "sim-chat" }]
[[routes]]
model = "slow"
targets = [{ provider = "slow", model = "sim-chat" }]
TOML
RUST_LOG=warn "$bin" serve -c "$work/gw.toml" >"$work/gw.log" 2>&1 &
gw_pid=$!
have_nginx=0
if command -v nginx >/dev/null; then
  cat >"$work/nginx.conf" <<NGINX
worker_processes $workers;
pid $work/nginx.pid;
error_log $work/nginx.err;
events { worker_connections 4096; }
http {
  access_log off;
  upstream up { server 127.0.0.1:19001; keepalive 128; }
  server {
    listen 127.0.0.1:19090;
    # Bodies up to 1 MiB held in memory: past the default 16 KiB nginx writes them to a file
    # first, and its call to the provider then waited ~40 ms (BODY_KB=16: 94 req/s).
    client_body_buffer_size 1m;
    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
NGINX
  nginx -c "$work/nginx.conf" -p "$work" && have_nginx=1
fi
for _ in $(seq 100); do curl -sf 127.0.0.1:19080/healthz >/dev/null && break; sleep 0.1; done

paths=("direct http://127.0.0.1:19001/v1/chat/completions sim-chat" "llmgw http://127.0.0.1:19080/v1/chat/completions chat")
[ "$have_nginx" = 1 ] && paths+=("nginx http://127.0.0.1:19090/v1/chat/completions sim-chat")
body='{"model":"M","messages":[{"role":"user","content":"hello"}]}'
stream_body='{"model":"M","stream":true,"messages":[{"role":"user","content":"hello"}]}'
if [ -n "${BODY_KB:-}" ]; then # requests carrying a conversation, as clients send them
  body=$(python3 scripts/conversation.py "$BODY_KB" M)
  stream_body=$(python3 scripts/conversation.py "$BODY_KB" M stream)
fi
run() { # url model rate(or max) body conns -> json
  local args=(-z "${secs}s" --no-tui --output-format json -m POST -H 'content-type: application/json' -d "${4/M/$2}")
  if [ "$3" = max ]; then args+=(-c "$5"); else args+=(-q "$3" -c "$5" --latency-correction); fi
  oha "${args[@]}" "$1" 2>/dev/null | compact
}
compact() { python3 -c 'import json, sys; print(json.dumps(json.load(sys.stdin)))'; }
results=target/bench-results.jsonl
: >"$results"
for round in $(seq "$rounds"); do
  # Each round starts at the next path: where a run stands in a round (what ran just before it)
  # moved a gateway's p99 at 1000 req/s by ~0.05 ms in A/B runs, so no path keeps one place.
  k=$(((round - 1) % ${#paths[@]}))
  order=("${paths[@]:k}" "${paths[@]:0:k}")
  for rate in 1000 5000 max; do
    for p in "${order[@]}"; do
      read -r name url model <<<"$p"
      echo "{\"kind\":\"json\",\"load\":\"$rate\",\"path\":\"$name\",\"oha\":$(run "$url" "$model" "$rate" "$body" 64)}" >>"$results"
    done
  done
  for p in "${order[@]}"; do
    read -r name url model <<<"$p"
    echo "{\"kind\":\"stream\",\"load\":\"max\",\"path\":\"$name\",\"oha\":$(run "$url" "$model" max "$stream_body" 64)}" >>"$results"
    echo "{\"kind\":\"stream_reused\",\"path\":\"$name\",\"probe\":$("$probe" "$url" "$model" 300)}" >>"$results"
  done
done

# 1000 streams at once from the slow provider, through llmgw: errors and the gateway's memory.
# The peak is this phase's own: reset the kernel's high-water mark first (Linux 4.0+).
echo 5 >"/proc/$gw_pid/clear_refs" 2>/dev/null || true
rss_before=$(awk '/VmRSS/ {print $2}' "/proc/$gw_pid/status")
cpu_before=$(awk '{print $14+$15}' "/proc/$gw_pid/stat")
held_secs=$((secs < 10 ? 10 : secs))
held=$(oha -z "${held_secs}s" --no-tui --output-format json -m POST -H 'content-type: application/json' \
  -d "${stream_body/M/slow}" -c 1000 http://127.0.0.1:19080/v1/chat/completions 2>/dev/null | compact)
cpu_after=$(awk '{print $14+$15}' "/proc/$gw_pid/stat")
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$gw_pid/status")
echo "{\"kind\":\"held_streams\",\"path\":\"llmgw\",\"peak_rss_kib\":$hwm,\"rss_before_kib\":$rss_before,\"cpu_ticks\":$((cpu_after - cpu_before)),\"seconds\":$held_secs,\"oha\":$held}" >>"$results"

# Cache hits: the same request again and again through llmgw against it sent straight to the
# fastest generating provider; 64 connections, closed loop.
curl -sf 127.0.0.1:19080/v1/chat/completions -H 'content-type: application/json' -d "${body/M/cached}" >/dev/null
echo "{\"kind\":\"cache\",\"path\":\"direct\",\"oha\":$(run http://127.0.0.1:19002/v1/chat/completions sim-chat max "$body" 64)}" >>"$results"
echo "{\"kind\":\"cache\",\"path\":\"llmgw\",\"oha\":$(run http://127.0.0.1:19080/v1/chat/completions cached max "$body" 64)}" >>"$results"

# The store, in a process of its own with its own temporary directory, after the load has ended.
store=$("$store_bench" "${STORE_RECORDS:-1000000}" --json 2>"$work/store.log") || { cat "$work/store.log" >&2; exit 1; }
echo "{\"kind\":\"store\",\"bench\":$store}" >>"$results"

echo "{\"kind\":\"setup\",\"workers\":$workers,\"cores\":$(nproc),\"body_bytes\":${#body}}" >>"$results"
python3 scripts/bench_report.py "$results" target/bench-summary.json
