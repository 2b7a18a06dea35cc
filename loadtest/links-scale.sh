#!/usr/bin/env bash
# Resident memory per link and time to ready for large link maps, loaded from
# the JSON Lines links file and from a links snapshot.
# Usage: loadtest/links-scale.sh [N ...]        (default: 1000000 10000000)
#   env: PREVIEW=1: every link carries a preview (120-byte title, 200-byte
#   description); OUT: the result directory; RF_BIN: a refedge binary
#   instead of the release build.
# Writes loadtest/results/<date>-<host>-links/{report.md,raw/*}.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=("${@:-1000000 10000000}")
[ $# -eq 0 ] && SIZES=(1000000 10000000)
if [ -z "${RF_BIN:-}" ]; then
  cargo build --release --locked --bin refedge
  RF_BIN=${CARGO_TARGET_DIR:-target}/release/refedge
fi
BIN=$RF_BIN
OUT=${OUT:-loadtest/results/$(date -u +%Y-%m-%d)-$(hostname)-links}
GEN_FLAGS=${PREVIEW:+--preview}
mkdir -p "$OUT/raw"
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
ADMIN=127.0.0.1:19190

# Starts refedge, waits for /readyz, prints "seconds rss_kib", stops it (SIGTERM).
measure() { # $1 links file, $2 snapshot file or "", $3 log
  : > "$3"
  local start end rss
  start=$(date +%s.%N)
  env REFEDGE_SERVER_LISTEN=127.0.0.1:18180 REFEDGE_ADMIN_LISTEN=$ADMIN REFEDGE_LINKS_FILE="$1" \
    REFEDGE_EVENTS_SPOOL_DIR="$WORK/spool" REFEDGE_ATTRIBUTION_SECRET=scale-secret-0123456789 \
    ${2:+REFEDGE_LINKS_SNAPSHOT_FILE=$2} REFEDGE_LOG_LEVEL=info "$BIN" serve --config /dev/null 2>"$3" &
  local pid=$!
  until curl -fs "http://$ADMIN/readyz" >/dev/null 2>&1; do
    kill -0 $pid 2>/dev/null || { cat "$3"; exit 1; }
    sleep 0.02
  done
  end=$(date +%s.%N)
  sleep 1
  rss=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
  kill -TERM $pid
  wait $pid || true
  grep -q '"stopped"' "$3" || grep -q 'stopped' "$3" || true
  echo "$(echo "$end - $start" | bc -l) $rss"
}

: > "$WORK/empty.jsonl"
read -r _ BASE_RSS < <(measure "$WORK/empty.jsonl" "" "$OUT/raw/empty.log")
echo "baseline RSS ${BASE_RSS} KiB"
{
  echo "# Link map at scale"
  echo
  echo "Command: \`loadtest/links-scale.sh ${SIZES[*]}\` on $(hostname), $(date -u +%Y-%m-%dT%H:%MZ)."
  echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)."
  echo "Links from \`loadtest/gen_links.py N ${GEN_FLAGS}\` (7-10 char codes, ~80-byte targets, advocate/campaign/program ids, 1 in 10 bound to a domain${PREVIEW:+; every link with a preview of a 120-byte title and a 200-byte description})."
  echo "Ready = from process start to \`/readyz\` 200. RSS per link = (RSS - RSS with no links) / N. Baseline RSS: ${BASE_RSS} KiB."
  echo "Targets: RSS per link ≤ raw bytes + 64 B; ready ≤ 5 s at 10M links."
  echo
  echo "| links | source | ready (s) | RSS (MiB) | RSS/link (B) | raw bytes/link | overhead/link (B) |"
  echo "| --- | --- | --- | --- | --- | --- | --- |"
} > "$OUT/report.md"
for n in "${SIZES[@]}"; do
  file="$WORK/links-$n.jsonl"
  python3 loadtest/gen_links.py "$n" 42 $GEN_FLAGS > "$file" 2> "$WORK/gen-$n.txt"
  raw=$(sed -n 's/.*raw_bytes_per_link=\([0-9.]*\).*/\1/p' "$WORK/gen-$n.txt")
  snap="$WORK/links-$n.snapshot"
  python3 loadtest/gen_links.py "$n" 42 --snapshot $GEN_FLAGS > "$snap" 2>/dev/null
  # From the links file.
  read -r secs rss < <(measure "$file" "" "$OUT/raw/file-$n.log")
  per=$(echo "($rss - $BASE_RSS) * 1024 / $n" | bc -l)
  printf '| %s | JSONL file | %.2f | %.0f | %.0f | %.1f | %.0f |\n' "$n" "$secs" "$(echo "$rss/1024" | bc -l)" "$per" "$raw" "$(echo "$per - $raw" | bc -l)" | tee -a "$OUT/report.md"
  # From a hand-made JSON snapshot (format 1) of the same links, as links
  # that came through the admin API or the links topic, with an empty links
  # file; at shutdown the node writes its own packed snapshot (format 2)...
  read -r secs rss < <(measure "$WORK/empty.jsonl" "$snap" "$OUT/raw/snapshot-json-$n.log")
  per=$(echo "($rss - $BASE_RSS) * 1024 / $n" | bc -l)
  printf '| %s | JSON snapshot | %.2f | %.0f | %.0f | %.1f | %.0f |\n' "$n" "$secs" "$(echo "$rss/1024" | bc -l)" "$per" "$raw" "$(echo "$per - $raw" | bc -l)" | tee -a "$OUT/report.md"
  # ...which is what a restart loads.
  read -r secs rss < <(measure "$WORK/empty.jsonl" "$snap" "$OUT/raw/snapshot-packed-$n.log")
  per=$(echo "($rss - $BASE_RSS) * 1024 / $n" | bc -l)
  printf '| %s | packed snapshot (restart) | %.2f | %.0f | %.0f | %.1f | %.0f |\n' "$n" "$secs" "$(echo "$rss/1024" | bc -l)" "$per" "$raw" "$(echo "$per - $raw" | bc -l)" | tee -a "$OUT/report.md"
  rm -f "$file" "$snap"
done
cat "$OUT/report.md"
