#!/usr/bin/env bash
# QR images served by the edge, beside its redirect, in one run: keep-alive
# wrk (2 threads, 64 connections) for SECS seconds on one code's
#   redirect   GET /demo (a human click: the baseline)
#   png        GET /demo/qr.png (512 px, rendered every time)
#   svg        GET /demo/qr.svg (rendered every time)
#   cached     GET /demo/qr.png with the image's own ETag in If-None-Match
#              (304: a browser's or a CDN's copy revalidated)
# in alternating rounds; req/s and the edge's CPU µs per request (medians).
# Usage: loadtest/qr.sh [ROUNDS] [SECS]      (default 3 rounds of 10 s)
# Writes OUT (default loadtest/results/<date>-<host>-qr)/report.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3} SECS=${2:-10}
. loadtest/lib.sh
for tool in wrk curl; do need $tool; done
build_refedge
results_dir qr
work_dir
PUBLIC=127.0.0.1:18187
ADMIN=127.0.0.1:19197
REFEDGE_SERVER_LISTEN=$PUBLIC REFEDGE_ADMIN_LISTEN=$ADMIN REFEDGE_LINKS_FILE=config/links.jsonl \
  REFEDGE_EVENTS_SPOOL_DIR="$WORK/spool" REFEDGE_ATTRIBUTION_SECRET=qr-secret-0123456789 \
  REFEDGE_LOG_LEVEL=warn "$BIN" serve --config /dev/null 2>"$WORK/edge.log" &
PID=$!
wait_ready "$ADMIN" $PID "$WORK/edge.log"
TAG=$(curl -fsI "http://$PUBLIC/demo/qr.png" | tr -d '\r' | awk -F': ' 'tolower($1) == "etag" {print $2}')
[ -n "$TAG" ] || { echo "no ETag on the image" >&2; exit 1; }
[ "$(curl -s -o /dev/null -w '%{http_code}' -H "If-None-Match: $TAG" "http://$PUBLIC/demo/qr.png")" = 304 ]
UA='Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0 Safari/537.36'
for r in $(seq 1 "$ROUNDS"); do
  for m in redirect png svg cached; do
    case $m in
      redirect) path=/demo; hdr=() ;;
      png) path=/demo/qr.png; hdr=() ;;
      svg) path=/demo/qr.svg; hdr=() ;;
      cached) path=/demo/qr.png; hdr=(-H "If-None-Match: $TAG") ;;
    esac
    before=$(cpu_ticks $PID)
    wrk -t2 -c64 -d"${SECS}s" -H "User-Agent: $UA" "${hdr[@]}" "http://$PUBLIC$path" >"$OUT/raw/$m-$r.txt"
    after=$(cpu_ticks $PID)
    rps=$(awk '/Requests\/sec/ {print $2}' "$OUT/raw/$m-$r.txt")
    total=$(awk '/requests in/ {print $1}' "$OUT/raw/$m-$r.txt")
    cpu=$(echo "($after - $before) * 1000000 / $HZ / $total" | bc -l)
    printf '%s %s %.0f %.2f\n' "$m" "$r" "$rps" "$cpu" | tee -a "$OUT/raw/rounds.txt"
  done
done
{
  echo "# QR images beside the redirect"
  echo
  echo "Command: \`loadtest/qr.sh $ROUNDS $SECS\` on $(hostname), $(date -u +%Y-%m-%dT%H:%MZ); $(nproc) cores shared by wrk and the edge."
  echo "wrk -t2 -c64 keep-alive, one code (\`demo\`), medians of $ROUNDS alternating rounds of $SECS s."
  echo
  echo "| request | req/s | edge CPU µs/request |"
  echo "| --- | ---: | ---: |"
  for m in redirect png svg cached; do
    rps=$(awk -v m=$m '$1 == m {print $3}' "$OUT/raw/rounds.txt" | median)
    cpu=$(awk -v m=$m '$1 == m {print $4}' "$OUT/raw/rounds.txt" | median)
    printf '| %s | %.0f | %.2f |\n' "$m" "$rps" "$cpu"
  done
} >"$OUT/report.md"
cat "$OUT/report.md"
