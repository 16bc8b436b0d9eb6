#!/usr/bin/env bash
# Proxy overhead benchmark: a simulated provider with 0 ms latency, driven directly and then
# through llmgw in the same run by oha (open loop at fixed rates, then closed loop at maximum
# throughput with 64 connections). Prints p50/p99 and req/s for both paths, the latency llmgw
# adds and the throughput ratio. Needs oha: `cargo install oha --locked`.
#   scripts/bench.sh [seconds per run, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
command -v oha >/dev/null || { echo "oha not found: cargo install oha --locked" >&2; exit 1; }
cargo build --release --quiet
bin=target/release/llmgw
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT

"$bin" mock --listen 127.0.0.1:19001 --name bench --latency-ms 0 --jitter-ms 0 --tokens-per-s 0 --reply-tokens 16 \
  >"$work/mock.log" 2>&1 &
# The fastest simulated provider with generation time: 0 ms before the first byte, 300 tokens/s.
"$bin" mock --listen 127.0.0.1:19002 --name gen --latency-ms 0 --jitter-ms 0 --tokens-per-s 300 --reply-tokens 16 \
  >"$work/mock2.log" 2>&1 &
cat >"$work/gw.toml" <<TOML
[server]
listen = "127.0.0.1:19080"
admin_listen = "127.0.0.1:0"
data_dir = "$work/data"
[[providers]]
name = "bench"
base_url = "http://127.0.0.1:19001/v1"
[[providers]]
name = "gen"
base_url = "http://127.0.0.1:19002/v1"
[[routes]]
model = "chat"
cache = { enabled = false }
targets = [{ provider = "bench", model = "sim-chat" }]
[[routes]]
model = "cached"
targets = [{ provider = "gen", model = "sim-chat" }]
TOML
RUST_LOG=warn "$bin" serve -c "$work/gw.toml" >"$work/gw.log" 2>&1 &
for _ in $(seq 100); do curl -sf 127.0.0.1:19080/healthz >/dev/null && break; sleep 0.1; done

body='{"model":"M","messages":[{"role":"user","content":"hello"}]}'
run() { # url model rate(or max) -> json
  local args=(-z "${secs}s" --no-tui --output-format json -m POST -H 'content-type: application/json' -d "${body/M/$2}")
  if [ "$3" = max ]; then args+=(-c 64); else args+=(-q "$3" -c 64 --latency-correction); fi
  oha "${args[@]}" "$1" 2>/dev/null
}
printf '%-10s %-7s %10s %10s %10s %8s\n' load path p50_ms p99_ms req_s ok_%
for rate in 1000 5000 max; do
  direct=$(run http://127.0.0.1:19001/v1/chat/completions sim-chat $rate)
  proxied=$(run http://127.0.0.1:19080/v1/chat/completions chat $rate)
  python3 - "$rate" "$direct" "$proxied" <<'PY'
import json, sys
rate, d, p = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
def row(name, r):
    s, pct = r["summary"], r["latencyPercentiles"]
    print(f"{rate:<10} {name:<7} {pct['p50']*1000:10.3f} {pct['p99']*1000:10.3f} {s['requestsPerSec']:10.0f} {s['successRate']*100:8.2f}")
    return pct["p50"]*1000, pct["p99"]*1000, s["requestsPerSec"]
d50, d99, drps = row("direct", d)
p50, p99, prps = row("llmgw", p)
print(f"{rate:<10} added: p50 +{p50-d50:.3f} ms, p99 +{p99-d99:.3f} ms, throughput {100*prps/drps:.0f}% of direct")
PY
done

# Cache hits: the same request again and again through llmgw (answered from the cache) against
# the same request sent straight to the fastest generating provider; 64 connections, closed loop.
curl -sf 127.0.0.1:19080/v1/chat/completions -H 'content-type: application/json' -d "${body/M/cached}" >/dev/null
direct=$(run http://127.0.0.1:19002/v1/chat/completions sim-chat max)
hits=$(run http://127.0.0.1:19080/v1/chat/completions cached max)
python3 - "$direct" "$hits" <<'PY'
import json, sys
d, h = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print()
for name, r in (("provider (0 ms + 300 tok/s), direct", d), ("llmgw cache hit", h)):
    p = r["latencyPercentiles"]
    print(f"{name:<38} p50 {p['p50']*1000:8.3f} ms  p99 {p['p99']*1000:8.3f} ms  {r['summary']['requestsPerSec']:9.0f} req/s")
print(f"a hit is {d['latencyPercentiles']['p50'] / h['latencyPercentiles']['p50']:.0f}x faster at p50")
PY

