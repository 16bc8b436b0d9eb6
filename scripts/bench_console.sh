#!/usr/bin/env bash
# What watching the gateway costs it, measured in one run under 1000 req/s of non-streamed
# traffic: nothing watching; 1 and 5 attached consoles (each one the admin API's snapshot stream,
# exactly what `llmgw tui --attach` reads); /metrics scraped once a second. For each: the
# gateway's CPU, the clients' p99, bytes per second per console, and the time of a scrape.
# Writes target/bench-console.json. Needs oha (`cargo install oha --locked`).
#   scripts/bench_console.sh [seconds per run, default 20]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-20}
command -v oha >/dev/null || { echo "oha not found: cargo install oha --locked" >&2; exit 1; }
cargo build --release --quiet --bin llmgw
bin=target/release/llmgw
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT

"$bin" mock --listen 127.0.0.1:19201 --name bench --latency-ms 0 --jitter-ms 0 --tokens-per-s 0 --reply-tokens 16 \
  >"$work/mock.log" 2>&1 &
# Eight targets over two routes, as a real dashboard shows: every series the snapshots carry.
{
  printf '[server]\nlisten = "127.0.0.1:19280"\nadmin_listen = "127.0.0.1:19281"\ndata_dir = "%s/data"\n' "$work"
  for p in a b c d; do printf '[[providers]]\nname = "%s"\nbase_url = "http://127.0.0.1:19201/v1"\n' "$p"; done
  for r in chat chat2; do
    printf '[[routes]]\nmodel = "%s"\ntargets = [' "$r"
    for p in a b c d; do printf '{ provider = "%s", model = "sim-chat" },' "$p"; done
    printf ']\n'
  done
} >"$work/gw.toml"
RUST_LOG=warn "$bin" serve -c "$work/gw.toml" >"$work/gw.log" 2>&1 &
gw_pid=$!
for _ in $(seq 100); do curl -sf 127.0.0.1:19280/healthz >/dev/null && break; sleep 0.1; done
token=$(cat "$work/data/admin.token")
tck=$(getconf CLK_TCK)
body='{"model":"chat","messages":[{"role":"user","content":"hello"}]}'
results=target/bench-console.jsonl
: >"$results"

phase() { # name consoles scrape(0/1)
  local name=$1 consoles=$2 scrape=$3 i
  pids=()
  for i in $(seq "$consoles"); do
    [ "$consoles" = 0 ] && break
    curl -sN -H "Authorization: Bearer $token" http://127.0.0.1:19281/admin/snapshots >"$work/console$i" &
    pids+=($!)
  done
  if [ "$scrape" = 1 ]; then
    ( while true; do
        curl -s -o /dev/null -w '%{time_total} %{size_download}\n' -H "Authorization: Bearer $token" \
          http://127.0.0.1:19281/metrics >>"$work/scrapes"
        sleep 1
      done ) &
    pids+=($!)
  fi
  : >"$work/scrapes"
  sleep 2 # the consoles' first, whole snapshot is not what they cost over time
  for i in $(seq "$consoles"); do [ "$consoles" = 0 ] && break; : >"$work/console$i.start"; wc -c <"$work/console$i" >"$work/console$i.start"; done
  local before after
  before=$(awk '{print $14+$15}' "/proc/$gw_pid/stat")
  local oha_json
  oha_json=$(oha -z "${secs}s" --no-tui --output-format json -q 1000 -c 32 --latency-correction -m POST \
    -H 'content-type: application/json' -d "$body" http://127.0.0.1:19280/v1/chat/completions 2>/dev/null |
    python3 -c 'import json, sys; print(json.dumps(json.load(sys.stdin)))')
  after=$(awk '{print $14+$15}' "/proc/$gw_pid/stat")
  local bytes=0
  for i in $(seq "$consoles"); do
    [ "$consoles" = 0 ] && break
    bytes=$((bytes + $(wc -c <"$work/console$i") - $(cat "$work/console$i.start")))
  done
  if [ ${#pids[@]} -gt 0 ]; then
    kill "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  fi
  local scrapes
  scrapes=$(python3 -c 'import json,sys; r=[l.split() for l in open(sys.argv[1]) if l.strip()]; print(json.dumps({"n": len(r), "ms": [float(a)*1000 for a,_ in r], "bytes": [int(b) for _,b in r]}))' "$work/scrapes")
  echo "{\"phase\":\"$name\",\"consoles\":$consoles,\"scrape\":$scrape,\"seconds\":$secs,\"cpu_s\":$(python3 -c "print(($after-$before)/$tck)"),\"console_bytes\":$bytes,\"scrapes\":$scrapes,\"oha\":$oha_json}" >>"$results"
}

phase none 0 0
phase "1 console" 1 0
phase "5 consoles" 5 0
phase "metrics 1 Hz" 0 1
phase "5 consoles + metrics" 5 1

python3 - "$results" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
base = rows[0]
def p99(r):
    return r["oha"]["latencyPercentiles"]["p99"] * 1000
print(f"{'watching':<24} {'gateway CPU':>12} {'vs none':>8} {'p99 ms':>7} {'per console':>13} {'scrape ms':>10}")
out = []
for r in rows:
    cpu = 100 * r["cpu_s"] / r["seconds"]
    per = r["console_bytes"] / r["seconds"] / r["consoles"] if r["consoles"] else None
    sc = r["scrapes"]["ms"]
    scrape_ms = sorted(sc)[len(sc) // 2] if sc else None
    row = {"watching": r["phase"], "cpu_pct": round(cpu, 1), "cpu_vs_none": round(cpu - 100 * base["cpu_s"] / base["seconds"], 1),
           "p99_ms": round(p99(r), 2), "bytes_per_s_per_console": round(per) if per else None,
           "scrape_ms_p50": round(scrape_ms, 2) if scrape_ms else None,
           "scrape_bytes": r["scrapes"]["bytes"][0] if r["scrapes"]["bytes"] else None}
    out.append(row)
    per_s = f"{per/1024:.1f} KiB/s" if per else "-"
    print(f"{r['phase']:<24} {cpu:>11.1f}% {row['cpu_vs_none']:>+7.1f} {row['p99_ms']:>7.2f} {per_s:>13} {('%.1f' % scrape_ms) if scrape_ms else '-':>10}")
json.dump(out, open("target/bench-console.json", "w"), indent=2)
PY
