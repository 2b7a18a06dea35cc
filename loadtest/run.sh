#!/usr/bin/env bash
# The side-by-side harness: refedge against what an operator would otherwise
# deploy, on this machine, in one run.
#   nginx      `map` of the codes + `return 302`, 2 workers (no attribution, no events)
#   bare       a hyper 1.x server answering one fixed 302 (loadtest/bare-hyper)
#   spool      refedge, every feature on, events.sink = "spool"
#   kafka      refedge shipping to a local Tansu broker
#   kafka_down refedge with the Kafka sink and the broker stopped
# In alternating rounds (nginx bare spool kafka kafka_down, repeated), each is
# driven by wrk with random codes from the same N links: keep-alive, one
# request per connection, and keep-alive from one client thread (wrk -t1, as
# a load balancer's few upstream connections from one process). Recorded:
# req/s and the server's own CPU µs per request from /proc/PID/stat (nginx:
# its workers; refedge: the process, librdkafka's threads included, the broker
# excluded). Then latency at half of each server's median keep-alive maximum
# with oha's coordinated-omission correction: p50/p90/p99/p99.9/max, plotted.
# Usage: loadtest/run.sh [--quick]
#   --quick: 1000 links, 1 round of 2 s, for the smoke run that keeps this working.
# Env: LINKS (100000), ROUNDS (3), SECS (10), LAT_SECS (20), RF_BIN
#   (a refedge binary instead of the release build), BARE_BIN (likewise for
#   bare hyper), OUT (result directory), SERVERS (which of the five to run),
#   WRK_THREADS (2), RF_CONFIG (a config file for refedge instead of
#   none: kafka.properties to compare), CODE_DIST (uniform, or zipf: wrk's
#   codes drawn Zipf-distributed instead of uniformly). On a machine with cores to spare, SERVER_CPUS and
#   LOAD_CPUS (taskset lists, e.g. 0-1 and 2-15) pin the servers to some
#   cores and wrk, oha and the broker to others, so that the load generator
#   no longer shares the servers' cores; there, REFEDGE_SERVER_PIN_THREADS=true
#   (passed on to refedge) pins its public threads to those cores.
# Writes loadtest/results/<date>-<host>/{report.md,latency.png,raw/*}.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
if [ "${1:-}" = "--quick" ]; then
  LINKS=${LINKS:-1000} ROUNDS=${ROUNDS:-1} SECS=${SECS:-2} LAT_SECS=${LAT_SECS:-2}
else
  LINKS=${LINKS:-100000} ROUNDS=${ROUNDS:-3} SECS=${SECS:-10} LAT_SECS=${LAT_SECS:-20}
fi
SERVERS=${SERVERS:-nginx bare spool kafka kafka_down}
WRK_THREADS=${WRK_THREADS:-2}
. loadtest/lib.sh
for tool in nginx wrk; do need $tool; done
command -v oha >/dev/null || cargo install oha --locked
case " $SERVERS " in *" kafka"*) need_tansu ;; esac
need_matplotlib
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
build_refedge
if [ -z "${BARE_BIN:-}" ]; then
  (cd loadtest/bare-hyper && CARGO_TARGET_DIR=$TARGET cargo build --release --locked --quiet)
  BARE_BIN=$TARGET/release/bare-hyper
fi
# Pinning (empty: everything shares every core).
ON_SERVER=${SERVER_CPUS:+taskset -c $SERVER_CPUS}
ON_LOAD=${LOAD_CPUS:+taskset -c $LOAD_CPUS}
export SERVERS SERVER_CPUS LOAD_CPUS WRK_THREADS CODE_DIST

results_dir
work_dir

harness_links "$LINKS"
export CODES="$WORK/codes.txt"
# oha picks a URL per request from this pattern: 200 of the codes.
OHA_CODES=$(head -200 "$WORK/codes.txt" | paste -sd'|')

PORT=18090
ADMIN=127.0.0.1:19099
BROKER_PORT=19393
nginx_redirects $PORT

wait_port() { until (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null; do sleep 0.05; done; }
# ready HOST:PORT: /readyz answers 200 (bash alone: no curl needed).
ready() {
  (
    exec 3<>"/dev/tcp/${1%:*}/${1##*:}" &&
      printf 'GET /readyz HTTP/1.0\r\n\r\n' >&3 &&
      read -r line <&3 &&
      [[ $line == *" 200 "* ]]
  ) 2>/dev/null
}
# The child processes of a process (nginx's workers).
children() { awk -v p="$1" '$4 == p {print $1}' /proc/[0-9]*/stat 2>/dev/null | tr '\n' ' '; }
broker_up() {
  $ON_LOAD tansu broker --listener-url tcp://127.0.0.1:$BROKER_PORT --advertised-listener-url tcp://127.0.0.1:$BROKER_PORT \
    --storage-engine memory://tansu/ >>"$WORK/tansu.log" 2>&1 &
  BROKER_PID=$!
  wait_port $BROKER_PORT
  tansu topic create refedge.clicks --partitions 3 --broker tcp://127.0.0.1:$BROKER_PORT >/dev/null 2>&1 || true
}
broker_down() { kill -9 "$BROKER_PID" 2>/dev/null || true; wait "$BROKER_PID" 2>/dev/null || true; }
edge_up() { # $1 = spool | kafka
  rm -rf "$WORK/spool"
  REFEDGE_SERVER_LISTEN=127.0.0.1:$PORT REFEDGE_ADMIN_LISTEN=$ADMIN REFEDGE_LINKS_FILE="$WORK/links.jsonl" \
  REFEDGE_EVENTS_SPOOL_DIR="$WORK/spool" REFEDGE_EVENTS_SINK=$1 REFEDGE_KAFKA_BROKERS=127.0.0.1:$BROKER_PORT \
  REFEDGE_ATTRIBUTION_SECRET=loadtest-secret-0123456789 REFEDGE_KAFKA_SHUTDOWN_TIMEOUT_MS=200 \
  REFEDGE_LOG_LEVEL=warn $ON_SERVER "$RF_BIN" serve --config "${RF_CONFIG:-/dev/null}" 2>>"$WORK/edge.log" &
  SERVER_PID=$!
  until ready "$ADMIN"; do sleep 0.05; done
  PIDS=$SERVER_PID
}
up() {
  case $1 in
    nginx)
      $ON_SERVER nginx -c "$WORK/nginx.conf" -p "$WORK"
      wait_port $PORT
      PIDS=$(children "$(cat "$WORK/nginx.pid")") ;;
    bare)
      $ON_SERVER "$BARE_BIN" 127.0.0.1:$PORT &
      SERVER_PID=$!
      wait_port $PORT
      PIDS=$SERVER_PID ;;
    spool) edge_up spool ;;
    kafka) broker_up; edge_up kafka ;;
    kafka_down) broker_up; broker_down; edge_up kafka ;;
  esac
}
down() {
  case $1 in
    nginx) kill -QUIT "$(cat "$WORK/nginx.pid")"; while [ -f "$WORK/nginx.pid" ]; do sleep 0.05; done ;;
    bare) kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true ;;
    *) kill -TERM "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
       [ "$1" = kafka ] && broker_down ;;
  esac
  while (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null; do sleep 0.05; done
}
ticks() { cpu_ticks $PIDS; }
# Clicks refedge could not keep (hand-off or spool full) so far; 0 for the
# baselines, which keep none.
dropped() {
  case $1 in
    nginx | bare) echo 0 ;;
    *) (exec 3<>"/dev/tcp/${ADMIN%:*}/${ADMIN##*:}" &&
        printf 'GET /metrics HTTP/1.0\r\n\r\n' >&3 &&
        awk '/^refedge_events_total\{result="dropped_(queue|spool)_full"\}/ {n += $2} END {print n + 0}' <&3) ;;
  esac
}

echo "server mode round rps cpu_us errors dropped" >"$WORK/rows"
for r in $(seq 1 "$ROUNDS"); do
  for s in $SERVERS; do
    up $s
    for mode in ka close one; do
      raw="$OUT/raw/$s-$mode-$r.txt"
      c0=$(ticks)
      d0=$(dropped $s)
      CLOSE=$([ $mode = close ] && echo 1 || echo 0) $ON_LOAD wrk -t"$([ $mode = one ] && echo 1 || echo "$WRK_THREADS")" -c64 -d${SECS}s -s "$WORK/random.lua" "http://127.0.0.1:$PORT" >"$raw"
      c1=$(ticks)
      d1=$(dropped $s)
      n=$(awk '/requests in/ {print $1}' "$raw")
      rps=$(awk '/Requests\/sec/ {print $2}' "$raw")
      errs=$(awk '/Socket errors/ {for (i = 4; i <= NF; i += 2) s += $i} /Non-2xx or 3xx/ {s += $NF} END {print s + 0}' "$raw")
      cpu=$(awk -v d=$((c1 - c0)) -v hz="$HZ" -v n="$n" 'BEGIN {print d * 1000000 / hz / n}')
      printf '%s %s %s %.0f %.2f %s %s\n' $s $mode "$r" "$rps" "$cpu" "$errs" $((d1 - d0)) | tee -a "$WORK/rows"
    done
    down $s
  done
done
cp "$WORK/rows" "$OUT/raw/rows.txt"

med() { awk -v s=$1 -v m=$2 -v c=$3 '$1==s && $2==m {print $c}' "$WORK/rows" | median; }

# Latency at half of each server's median keep-alive maximum.
for s in $SERVERS; do
  rate=$(awk -v m="$(med $s ka 4)" 'BEGIN {printf "%d", m / 2}')
  up $s
  $ON_LOAD oha -z ${LAT_SECS}s -q "$rate" -c 64 --latency-correction --no-tui --output-format json \
    -H "User-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/126.0 Safari/537.36" \
    --rand-regex-url "http://127.0.0.1:$PORT/($OHA_CODES)" >"$OUT/raw/$s-latency.json" 2>"$OUT/raw/$s-latency.err" || true
  down $s
done

python3 loadtest/report.py "$OUT" "$WORK/rows" "$LINKS" "$ROUNDS" "$SECS" "$LAT_SECS" "$*"
