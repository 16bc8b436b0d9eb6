#!/usr/bin/env bash
# Runs each fuzz target (fuzz/fuzz_targets: the request inspection and model splice, the SSE
# framer) for a bounded time, starting from the seed corpus kept in fuzz/corpus. Needs a nightly toolchain (cargo fuzz builds with sanitizers); installs cargo-fuzz
# if missing. Usage: scripts/fuzz.sh [seconds per target, default 60]
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz: needs a nightly Rust toolchain (rustup toolchain list shows none)" >&2
  exit 2
fi
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
for target in request sse; do
  echo "fuzz: $target for ${secs}s"
  # New inputs go to fuzz/work (not committed); the seeds in fuzz/corpus are read, not grown.
  mkdir -p "fuzz/work/$target"
  cargo +nightly fuzz run "$target" "fuzz/work/$target" "fuzz/corpus/$target" -- -max_total_time="$secs" -max_len=65536
done
echo "fuzz: no crash in ${secs}s per target"
