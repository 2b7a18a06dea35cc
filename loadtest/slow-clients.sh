#!/usr/bin/env bash
# Attackers' tools against a release build: slowhttptest (Debian's, nobody
# here wrote it) in slowloris, slow-body (both conversion intakes, with an
# allowed Origin or a token) and slow-read modes, and HTTP/2 connections that
# only PING (loadtest/slow_clients.py), each at slowhttptest's default
# connection count (50) and at twice the per-client cap
# (server.max_connections_per_client, 1024), all from 127.0.0.1, while a
# probe from 127.0.0.2 sends real clicks (a new connection every 50 ms). Per attack:
# slowhttptest's verdict ("service available"), the probe's clicks,
# failures and p50/p99/max. With several binaries (BINS="A B", e.g. the
# commit before the body deadline and this one) every attack runs for each,
# in turn: a before/after in one run.
# The edge runs its defaults but for server.idle_timeout_ms, IDLE_MS (10 s,
# so that an idle HTTP/2 connection's fate shows within SECS).
# Usage: loadtest/slow-clients.sh [SECS]   env: BINS (default: the release build), LABELS, IDLE_MS, OUT
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-30}
IDLE_MS=${IDLE_MS:-10000}
. loadtest/lib.sh
need slowhttptest
if [ -z "${BINS:-}" ]; then build_refedge; BINS=$BIN; fi
results_dir slow-clients
work_dir
ulimit -n "$(ulimit -Hn)"   # 2048 connections and the probe need more than 1024
TOKEN=conversions-token-0123456789
ORIGIN=https://www.brand.example
printf '%s\n' '{"code":"demo","target":"https://brand.example/welcome","advocate_id":"adv-1"}' >"$WORK/links.jsonl"

start_edge() {
  local bin=$1 name=$2
  rm -rf "$WORK/spool"
  env REFEDGE_SERVER_LISTEN=127.0.0.1:18480 REFEDGE_ADMIN_LISTEN=127.0.0.1:19480 \
    REFEDGE_LINKS_FILE="$WORK/links.jsonl" REFEDGE_EVENTS_SPOOL_DIR="$WORK/spool" \
    REFEDGE_CONVERSIONS_TOKENS=$TOKEN REFEDGE_CONVERSIONS_ALLOWED_ORIGINS=$ORIGIN \
    REFEDGE_ATTRIBUTION_SECRET=slow-clients-secret-0123456789 REFEDGE_SERVER_IDLE_TIMEOUT_MS="$IDLE_MS" \
    "$bin" serve --config /dev/null 2>"$OUT/raw/$name.log" &
  EDGE=$!
  for _ in $(seq 100); do curl -sf http://127.0.0.1:19480/readyz >/dev/null && return; sleep 0.1; done
  echo "the edge did not start" >&2; exit 1
}

URL=http://127.0.0.1:18480
{
  echo "# Slow clients against refedge ($(date -u +%Y-%m-%d), $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
  echo
  echo "\`loadtest/slow-clients.sh $SECS\`: each attack for ${SECS} s from 127.0.0.1 while a probe clicks (new connection every 50 ms); the edge's defaults but server.idle_timeout_ms = $IDLE_MS."
  echo
  echo "| binary | attack | connections | slowhttptest: service available | probe clicks | failed | p50 ms | p99 ms | max ms |"
  echo "| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |"
} >"$OUT/report.md"

for bin in $BINS; do
  label=$(basename "$(dirname "$(dirname "$bin")")")/$("$bin" --version | awk '{print $2}')
  [ -n "${LABELS:-}" ] && label=$(echo "$LABELS" | cut -d' ' -f$(( $(echo "$BINS" | tr ' ' '\n' | grep -n -x "$bin" | cut -d: -f1) )))
  for c in 50 2048; do
    for attack in slowloris slow-body-browser slow-body-server slow-read h2-ping; do
      start_edge "$bin" "$label-$attack-$c"
      raw="$OUT/raw/$(echo "$label" | tr '/' '_')-$attack-$c"
      python3 loadtest/slow_clients.py probe "$URL/demo" "$SECS" go.brand.example >"$raw.probe.json" &
      PROBE=$!
      case $attack in
        slowloris) slowhttptest -H -c "$c" -r 500 -i 5 -l "$SECS" -u "$URL/demo" >"$raw.txt" 2>&1 || true ;;
        slow-body-browser) slowhttptest -B -c "$c" -r 500 -i 5 -s 8192 -x 24 -l "$SECS" -t POST \
          -f $'application/json\r\nOrigin: '"$ORIGIN" -u "$URL/v1/conversions/browser" >"$raw.txt" 2>&1 || true ;;
        slow-body-server) slowhttptest -B -c "$c" -r 500 -i 5 -s 8192 -x 24 -l "$SECS" -t POST \
          -f $'application/json\r\nAuthorization: Bearer '"$TOKEN" -u "$URL/v1/conversions" >"$raw.txt" 2>&1 || true ;;
        slow-read) slowhttptest -X -c "$c" -r 500 -w 512 -y 1024 -n 5 -z 32 -k 3 -l "$SECS" -u "$URL/demo" >"$raw.txt" 2>&1 || true ;;
        h2-ping) python3 loadtest/slow_clients.py h2ping 127.0.0.1 18480 "$c" "$SECS" >"$raw.txt" 2>&1 || true ;;
      esac
      wait "$PROBE" || true
      kill "$EDGE" 2>/dev/null || true; wait "$EDGE" 2>/dev/null || true
      if [ "$attack" = h2-ping ]; then
        verdict=$(python3 loadtest/slow_clients.py verdict "$raw.txt")
      else
        # slowhttptest colours its report: the escapes go first.
        plain=$(sed 's/\x1b\[[0-9;]*[A-Za-z]//g' "$raw.txt")
        if grep -q 'service available:[[:space:]]*NO' <<<"$plain"; then verdict=NO
        elif grep -q 'service available:[[:space:]]*YES' <<<"$plain"; then verdict=YES
        else verdict="?"; fi
        verdict="$verdict ($(grep -o 'Exit status:.*' <<<"$plain" | tail -1 | sed 's/Exit status: *//'))"
      fi
      python3 - "$raw.probe.json" "$label" "$attack" "$c" "$verdict" >>"$OUT/report.md" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
print(f"| {sys.argv[2]} | {sys.argv[3]} | {sys.argv[4]} | {sys.argv[5]} | {p['clicks']} | {p['failures']} | {p['p50_ms']} | {p['p99_ms']} | {p['max_ms']} |")
PY
      tail -1 "$OUT/report.md"
    done
  done
done
echo "report: $OUT/report.md"
