#!/usr/bin/env bash
# Two refedge binaries, A and B, in alternating rounds at saturation on this
# machine: keep-alive wrk (CLIENTS threads, 2 by default, 64 connections, 10 s
# after a 2 s warm-up)
# over LINKS random codes, spool sink. Per round: req/s, the server's CPU µs
# per request, and the clicks it could not keep (dropped_queue_full): a rate
# bought by dropping clicks shows. SINK=kafka ships to a Tansu broker started
# afresh for each binary's round, and the CPU then includes librdkafka's threads.
# The writer thread's own CPU per event is read from its schedstat (ns); the
# longest spool append and the latest writer pass (upper bounds of the
# highest non-empty buckets of refedge_spool_write_seconds and
# refedge_spool_writer_late_seconds) say which stalled when clicks wait or
# drop, and `waits` counts the clicks that waited for room (builds with
# back-pressure). NOISE=1 runs a neighbour writing and fsyncing 256 MiB
# files on the spool's file system during every round.
# Usage: loadtest/ab.sh BIN_A BIN_B [ROUNDS]
#   env: LINKS=100000, CODES=5000 (how many of them wrk draws from; 0 = all),
#   CLIENTS=2 (wrk's threads; 1 for the one-client case),
#   SECS=10, SINK=spool, NOISE=0, QUERY (a query string every request
#   carries, as run.sh's `utm_campaign=spring`; none by default)
# Prints one line per round and binary; writes nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."
A=$1 B=$2 ROUNDS=${3:-3}
LINKS=${LINKS:-100000} CODES=${CODES:-5000} SECS=${SECS:-10} SINK=${SINK:-spool} CLIENTS=${CLIENTS:-2}
case $SINK in spool | kafka) ;; *) echo "SINK is spool or kafka" >&2; exit 2 ;; esac
. loadtest/lib.sh
for tool in wrk curl; do need $tool; done
if [ "$SINK" = kafka ]; then need_tansu; fi
work_dir
wrk_random "$LINKS" "$CODES"
PUBLIC=127.0.0.1:18183
ADMIN=127.0.0.1:19193
BROKER_PORT=19493
echo "sink: $SINK"
echo "round binary req/s cpu_us_per_request writer_us_per_event dropped_queue_full waits longest_write_le latest_pass_le"
# Nanoseconds the process's thread named $2 has run.
thread_ns() { awk '{print $1}' "$(dirname "$(grep -lx "$2" /proc/$1/task/*/comm | head -1)")/schedstat"; }
for r in $(seq 1 "$ROUNDS"); do
  for v in A B; do
    bin=$A; [ $v = B ] && bin=$B
    rm -rf "$WORK/spool"
    if [ "$SINK" = kafka ]; then
      tansu broker --listener-url tcp://127.0.0.1:$BROKER_PORT --advertised-listener-url tcp://127.0.0.1:$BROKER_PORT \
        --storage-engine memory://tansu/ >>"$WORK/tansu.log" 2>&1 &
      BROKER=$!
      until (exec 3<>/dev/tcp/127.0.0.1/$BROKER_PORT) 2>/dev/null; do sleep 0.05; done
      tansu topic create refedge.clicks --partitions 3 --broker tcp://127.0.0.1:$BROKER_PORT >/dev/null 2>&1 || true
    fi
    REFEDGE_EVENTS_SINK=$SINK REFEDGE_KAFKA_BROKERS=127.0.0.1:$BROKER_PORT REFEDGE_KAFKA_SHUTDOWN_TIMEOUT_MS=200 \
      REFEDGE_SERVER_LISTEN=$PUBLIC REFEDGE_ADMIN_LISTEN=$ADMIN REFEDGE_LINKS_FILE="$WORK/links.jsonl" \
      REFEDGE_EVENTS_SPOOL_DIR="$WORK/spool" REFEDGE_ATTRIBUTION_SECRET=loadtest-secret-0123456789 \
      REFEDGE_LOG_LEVEL=warn "$bin" serve --config /dev/null 2>>"$WORK/edge.log" &
    P=$!
    until curl -fs "http://$ADMIN/readyz" >/dev/null 2>&1; do sleep 0.05; done
    wrk -t"$CLIENTS" -c64 -d2s -s "$WORK/random.lua" "http://$PUBLIC" >/dev/null
    if [ "${NOISE:-0}" = 1 ]; then noise_start "$WORK"; fi
    t0=$(cpu_ticks $P) w0=$(thread_ns $P refedge-spool)
    wrk -t"$CLIENTS" -c64 -d"${SECS}s" -s "$WORK/random.lua" "http://$PUBLIC" >"$WORK/wrk.txt"
    t1=$(cpu_ticks $P) w1=$(thread_ns $P refedge-spool)
    noise_stop
    curl -s "http://$ADMIN/metrics" >"$WORK/metrics.txt"
    dropped=$(awk '$1 ~ /result="dropped_queue_full"/ {print $2}' "$WORK/metrics.txt")
    waits=$(awk '$1 == "refedge_events_wait_seconds_count" {print $2}' "$WORK/metrics.txt")
    write=$(bucket_le "$WORK/metrics.txt" refedge_spool_write_seconds 1)
    late=$(bucket_le "$WORK/metrics.txt" refedge_spool_writer_late_seconds 1)
    kill -TERM $P; wait $P 2>/dev/null || true
    if [ "$SINK" = kafka ]; then kill -9 $BROKER; wait $BROKER 2>/dev/null || true; fi
    awk -v r=$r -v v=$v -v t=$((t1 - t0)) -v w=$((w1 - w0)) -v hz=$HZ -v d=${dropped:-0} \
      -v wt=${waits:--} -v wr=$write -v la=$late '
      /requests in/ {n = $1} /Requests\/sec/ {rps = $2}
      END {printf "%s %s %.0f %.2f %.3f %s %s %s %s\n", r, v, rps, t * 1e6 / hz / n, w / 1000 / n, d, wt, wr, la}' "$WORK/wrk.txt"
  done
done
