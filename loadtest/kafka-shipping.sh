#!/usr/bin/env bash
# Shipping-path figures, measured side by side in one run on this machine:
#   1. redirect rate with the Kafka sink and the broker up vs the broker down
#      (alternating rounds; target: down / up >= 0.95);
#   2. events per second shipped to a local Tansu broker from a full spool.
# Usage: loadtest/kafka-shipping.sh [ROUNDS] [SECONDS]
# Writes loadtest/results/<date>-<host>-kafka/{report.md,raw/*}.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
SECS=${2:-10}
. loadtest/lib.sh
for tool in wrk bc curl; do need $tool; done
need_tansu
build_refedge
results_dir kafka
work_dir

# 1000 links and a wrk script that picks one at random per request.
for i in $(seq 0 999); do
  printf '{"code":"c%04d","target":"https://brand.example/landing/%d?utm_source=ref","advocate_id":"adv-%d","campaign_id":"camp-%d"}\n' "$i" "$i" "$i" $((i % 20))
done > "$WORK/links.jsonl"
cat > "$WORK/random.lua" <<'LUA'
math.randomseed(42)
wrk.headers["User-Agent"] = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) Safari/604.1"
request = function()
  return wrk.format("GET", string.format("/c%04d?utm_campaign=x", math.random(0, 999)))
end
LUA

BROKER_PORT=19392
PUBLIC=127.0.0.1:18080
ADMIN=127.0.0.1:19090
broker_up() {
  tansu broker --listener-url tcp://127.0.0.1:$BROKER_PORT --advertised-listener-url tcp://127.0.0.1:$BROKER_PORT \
    --storage-engine memory://tansu/ >"$WORK/tansu.log" 2>&1 &
  BROKER_PID=$!
  until (exec 3<>/dev/tcp/127.0.0.1/$BROKER_PORT) 2>/dev/null; do sleep 0.05; done
  tansu topic create refedge.clicks --partitions 3 --broker tcp://127.0.0.1:$BROKER_PORT >/dev/null
}
broker_down() { kill -9 "$BROKER_PID" 2>/dev/null || true; wait "$BROKER_PID" 2>/dev/null || true; }
edge_up() { # $1 = spool dir
  REFEDGE_SERVER_LISTEN=$PUBLIC REFEDGE_ADMIN_LISTEN=$ADMIN REFEDGE_LINKS_FILE="$WORK/links.jsonl" \
  REFEDGE_EVENTS_SPOOL_DIR="$1" REFEDGE_EVENTS_SINK=kafka REFEDGE_KAFKA_BROKERS=127.0.0.1:$BROKER_PORT \
  REFEDGE_ATTRIBUTION_SECRET=loadtest-secret-0123456789 REFEDGE_KAFKA_SHUTDOWN_TIMEOUT_MS=200 \
  REFEDGE_LOG_LEVEL=warn "$BIN" serve --config /dev/null 2>>"$WORK/edge.log" &
  EDGE_PID=$!
  until curl -fs "http://$ADMIN/readyz" >/dev/null 2>&1; do sleep 0.05; done
}
edge_down() { kill -TERM "$EDGE_PID"; wait "$EDGE_PID" || true; }
metric() { curl -s "http://$ADMIN/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
rps() { awk '/Requests\/sec/ {print $2}' "$1"; }

echo "== redirect rate, broker up vs down: $ROUNDS rounds of ${SECS}s each"
: > "$OUT/raw/rounds.tsv"
for r in $(seq 1 "$ROUNDS"); do
  for state in up down; do
    rm -rf "$WORK/spool"
    if [ "$state" = up ]; then broker_up; fi
    edge_up "$WORK/spool"
    wrk -t1 -c64 -d2s -s "$WORK/random.lua" "http://$PUBLIC" >/dev/null
    wrk -t1 -c64 -d"${SECS}s" -s "$WORK/random.lua" "http://$PUBLIC" > "$OUT/raw/wrk-$state-$r.txt"
    delivered=$(metric 'refedge_events_total{result="delivered"}')
    edge_down
    if [ "$state" = up ]; then broker_down; fi
    printf '%s\t%s\t%s\t%s\n' "$r" "$state" "$(rps "$OUT/raw/wrk-$state-$r.txt")" "${delivered:-0}" | tee -a "$OUT/raw/rounds.tsv"
  done
done

echo "== shipping a full spool"
rm -rf "$WORK/spool"
edge_up "$WORK/spool"   # broker down: everything stays in the spool
wrk -t1 -c64 -d"${SECS}s" -s "$WORK/random.lua" "http://$PUBLIC" > "$OUT/raw/wrk-fill.txt"
edge_down
SPOOLED=$(cat "$WORK"/spool/*.jsonl | wc -l)
SPOOL_BYTES=$(cat "$WORK"/spool/*.jsonl | wc -c)
broker_up
start=$(date +%s.%N)
edge_up "$WORK/spool"
while :; do
  d=$(metric 'refedge_events_total{result="delivered"}')
  [ "${d:-0}" -ge "$SPOOLED" ] && break
  sleep 0.05
done
end=$(date +%s.%N)
edge_down
broker_down
SHIP_SECS=$(echo "$end - $start" | bc -l)
SHIP_RATE=$(echo "$SPOOLED / $SHIP_SECS" | bc -l)

UP_MED=$(awk '$2=="up"{print $3}' "$OUT/raw/rounds.tsv" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
DOWN_MED=$(awk '$2=="down"{print $3}' "$OUT/raw/rounds.tsv" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
RATIO=$(echo "$DOWN_MED / $UP_MED" | bc -l)
{
  echo "# Kafka shipping figures"
  echo
  echo "Command: \`loadtest/kafka-shipping.sh $ROUNDS $SECS\` on $(hostname), $(date -u +%Y-%m-%dT%H:%MZ)."
  echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)."
  echo "wrk, 1 thread, 64 keep-alive connections, 1000 links picked at random; the"
  echo "broker (Tansu, in-memory storage), wrk and refedge share the machine."
  echo
  echo "| measure | figure |"
  echo "| --- | --- |"
  echo "| redirects/s, Kafka sink, broker up (median of $ROUNDS) | $UP_MED |"
  echo "| redirects/s, Kafka sink, broker down (median of $ROUNDS) | $DOWN_MED |"
  echo "| down ÷ up (target ≥ 0.95) | $(printf '%.3f' "$RATIO") |"
  echo "| events shipped from a full spool | $SPOOLED events, $SPOOL_BYTES bytes in $(printf '%.2f' "$SHIP_SECS") s |"
  echo "| shipping rate (start-up included) | $(printf '%.0f' "$SHIP_RATE") events/s |"
  echo
  echo "Rounds (round, broker, req/s, events delivered during the round):"
  echo
  echo '```'
  cat "$OUT/raw/rounds.tsv"
  echo '```'
} > "$OUT/report.md"
cat "$OUT/report.md"
