#!/usr/bin/env bash
# Runs every fuzz target (or those named) for SECONDS each with cargo fuzz
# (libFuzzer), starting from the seeds in tests/fuzz/seeds and the corpus
# grown by earlier runs, and prints one summary line per target: executions,
# corpus size and crashes. A crash leaves its input in tests/fuzz/artifacts.
# Usage: tests/fuzz/run.sh SECONDS [TARGET ...]
set -euo pipefail
cd "$(dirname "$0")"
SECS=${1:?usage: run.sh SECONDS [TARGET ...]}
shift
TARGETS=${*:-short_code cookie forwarded links_line query_merge}
export PATH="$HOME/.cargo/bin:$PATH"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
# The machine has only a stable toolchain; libFuzzer's sanitizer flags are
# nightly flags, which RUSTC_BOOTSTRAP lets stable rustc take.
export RUSTC_BOOTSTRAP=1
status=0
for t in $TARGETS; do
  mkdir -p "corpus/$t" logs
  # No sanitizer: our code is safe Rust (unsafe is denied), and ASan-built
  # C dependencies (zstd, librdkafka) fail to link into the fuzz binary.
  if cargo fuzz run --fuzz-dir . --sanitizer none "$t" "corpus/$t" "seeds/$t" -- \
      -max_total_time="$SECS" -print_final_stats=1 >"logs/$t.log" 2>&1; then
    result="0 crashes"
  else
    result="CRASH (see tests/fuzz/logs/$t.log and tests/fuzz/artifacts/$t)"
    status=1
  fi
  runs=$(awk '/stat::number_of_executed_units/ {print $2}' "logs/$t.log")
  echo "$t: ${SECS}s, ${runs:-?} executions, corpus $(find "corpus/$t" -type f | wc -l) inputs, $result"
done
exit $status
