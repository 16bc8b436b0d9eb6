#!/usr/bin/env bash
# What the dashboard costs: CPU of `llmgw demo` at 200 req/s with the dashboard (in tmux, default
# refresh) minus the same without it (--headless), and the resident memory of the dashboard demo
# over time. Both runs carry the same gateway, simulated providers and traffic generator, so the
# difference is the dashboard (sampler, snapshots, rendering).
#   scripts/measure-console.sh [cpu seconds, default 60] [memory minutes, default 15]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
minutes=${2:-15}
command -v tmux >/dev/null || { echo "needs tmux" >&2; exit 1; }
cargo build --release --quiet
bin=$PWD/target/release/llmgw
work=$(mktemp -d)
sock=llmgw-measure-$$
trap 'tmux -L $sock kill-server 2>/dev/null; kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
cpu() { # pid seconds -> % of one core
  local a b; a=$(ticks "$1"); sleep "$2"; b=$(ticks "$1")
  python3 -c "print(f'{($b - $a) * 100 / $(getconf CLK_TCK) / $2:.1f}')"
}
rss() { awk '/VmRSS/ {printf "%.1f MiB", $2 / 1024}' "/proc/$1/status"; }

"$bin" demo --headless --rps 200 --listen 127.0.0.1:0 --data-dir "$work/headless" >/dev/null 2>&1 &
headless=$!
sleep 10
h=$(cpu $headless "$secs")
kill $headless; wait $headless 2>/dev/null || true

tmux -L $sock new-session -d -s m -x 120 -y 36 "$bin demo --rps 200 --listen 127.0.0.1:0 --data-dir $work/tui"
sleep 2
pid=$(tmux -L $sock display -p -t m '#{pane_pid}')
sleep 8
ui_ticks() { for t in /proc/"$pid"/task/*; do [ "$(cat "$t/comm")" = llmgw-ui ] && awk '{print $14 + $15}' "$t/stat"; done; true; }
u0=$(ui_ticks)
t=$(cpu "$pid" "$secs")
u1=$(ui_ticks)
ui=$(python3 -c "print(f'{($u1 - $u0) * 100 / $(getconf CLK_TCK) / $secs:.1f}')")
echo "CPU at 200 req/s over ${secs}s (% of one core): headless $h, with dashboard $t (difference $(python3 -c "print(f'{$t - $h:.1f}')")); the UI thread alone $ui"
echo "RSS of llmgw demo with dashboard: start $(rss "$pid")"
for m in $(seq 1 "$minutes"); do
  sleep 60
  echo "  after ${m} min: $(rss "$pid")"
done
