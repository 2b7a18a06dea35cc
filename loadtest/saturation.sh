#!/usr/bin/env bash
# Saturation soak: the edge at its maximum rate (wrk -t2 -c64 keep-alive,
# 100,000 links, no pause) for SECS seconds per sink, spool and then Kafka
# (a Tansu broker on the same cores), with a noisy neighbour writing and
# fsyncing 256 MiB files on the spool's file system the whole time. Every
# click the edge answered must have its event: spool lines (spool sink), or
# Kafka deliveries (Kafka sink, counted once the shipper has caught up), and
# no dropped_* at all. Reports the rate, the hand-off waits (count, p99 and
# longest bucket of refedge_events_wait_seconds) and wrk's longest answer.
# The spool sink keeps every event, so its events.spool_max_bytes is raised
# (SPOOL_MAX_BYTES, default 48 GiB: ten minutes at 55k clicks a second are
# about 20 GB): the spool's own limit is a separate, documented drop
# (dropped_spool_full), not what this measures.
# Usage: loadtest/saturation.sh [SECS]     (default 600)
#   env: SINKS="spool kafka", SPOOL_MAX_BYTES, RF_BIN, OUT
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-600}
. loadtest/lib.sh
for tool in wrk curl; do need $tool; done
need_tansu
build_refedge
results_dir saturation
work_dir
wrk_random 100000
PUBLIC=127.0.0.1:18383
ADMIN=127.0.0.1:19393
BROKER_PORT=19593

metric() { curl -s "http://$ADMIN/metrics" | awk -v re="$1" '$1 ~ re {s += $2} END {printf "%d", s}'; }
echo "sink req_per_s wrk_max_latency answered kept dropped waits wait_p99_le wait_max_le" >"$OUT/raw/rows.txt"
for sink in ${SINKS:-spool kafka}; do
  rm -rf "$WORK/spool"
  if [ $sink = kafka ]; then
    (cd "$WORK" && exec tansu broker --listener-url tcp://127.0.0.1:$BROKER_PORT \
      --advertised-listener-url tcp://127.0.0.1:$BROKER_PORT --storage-engine memory://tansu/ >>"$WORK/tansu.log" 2>&1) &
    BROKER=$!
    until (exec 3<>/dev/tcp/127.0.0.1/$BROKER_PORT) 2>/dev/null; do sleep 0.05; done
    tansu topic create refedge.clicks --partitions 3 --broker tcp://127.0.0.1:$BROKER_PORT >/dev/null 2>&1 || true
  fi
  REFEDGE_EVENTS_SINK=$sink REFEDGE_KAFKA_BROKERS=127.0.0.1:$BROKER_PORT \
    REFEDGE_EVENTS_SPOOL_MAX_BYTES=${SPOOL_MAX_BYTES:-51539607552} \
    REFEDGE_SERVER_LISTEN=$PUBLIC REFEDGE_ADMIN_LISTEN=$ADMIN REFEDGE_LINKS_FILE="$WORK/links.jsonl" \
    REFEDGE_EVENTS_SPOOL_DIR="$WORK/spool" REFEDGE_ATTRIBUTION_SECRET=loadtest-secret-0123456789 \
    REFEDGE_LOG_LEVEL=warn "$BIN" serve --config /dev/null 2>>"$WORK/edge-$sink.log" &
  P=$!
  until curl -fs "http://$ADMIN/readyz" >/dev/null 2>&1; do sleep 0.05; done
  noise_start "$WORK"
  wrk -t2 -c64 -d"${SECS}s" --latency -s "$WORK/random.lua" "http://$PUBLIC" >"$WORK/wrk-$sink.txt"
  noise_stop
  answered=$(metric '^refedge_requests_total')
  if [ $sink = kafka ]; then
    # Every answered click delivered once the shipper has caught up.
    for _ in $(seq 600); do
      [ "$(metric 'result="delivered"')" -ge "$answered" ] && break
      sleep 0.5
    done
  fi
  curl -s "http://$ADMIN/metrics" >"$WORK/$sink.txt"
  kill -TERM $P; wait $P 2>/dev/null || true
  if [ $sink = spool ]; then
    kept=$(cat "$WORK/spool"/*.jsonl | grep -c '"type":"click"')
  else
    kept=$(awk '$1 ~ /result="delivered"/ {print $2}' "$WORK/$sink.txt")
    kill $BROKER; wait $BROKER 2>/dev/null || true
  fi
  cp "$WORK/wrk-$sink.txt" "$WORK/$sink.txt" "$OUT/raw/"
  dropped=$(awk '$1 ~ /result="(dropped_[a-z_]*|spool_failed)"/ {s += $2} END {printf "%d", s}' "$WORK/$sink.txt")
  waits=$(awk '$1 == "refedge_events_wait_seconds_count" {print $2}' "$WORK/$sink.txt")
  echo "$sink $(awk '/Requests\/sec/ {printf "%.0f", $2}' "$WORK/wrk-$sink.txt") \
$(awk '/Latency/ && !/Distribution/ {print $4; exit}' "$WORK/wrk-$sink.txt") $answered $kept $dropped $waits \
$(bucket_le "$WORK/$sink.txt" refedge_events_wait_seconds 0.99) $(bucket_le "$WORK/$sink.txt" refedge_events_wait_seconds 1)" | tee -a "$OUT/raw/rows.txt"
done

{
  echo "# Saturation soak with a noisy neighbour"
  echo
  echo "Command: \`bash loadtest/saturation.sh $SECS\`; $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); wrk -t2 -c64 keep-alive at the edge's maximum rate for $SECS s per sink over 100,000 links; a neighbour writes and fsyncs 256 MiB files on the spool's file system throughout; with Kafka, a Tansu broker on the same cores."
  echo
  echo "| sink | req/s | wrk's longest answer | answered | kept (spool lines / Kafka deliveries) | dropped_* + spool_failed | hand-off waits | wait p99 ≤ | longest wait ≤ |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  tail -n +2 "$OUT/raw/rows.txt" | awk '{printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8, $9}'
  echo
  echo "answered = \`refedge_requests_total\` at the end of the run; Kafka deliveries are counted once the shipper has caught up (at least once: a retried delivery may count twice)."
} >"$OUT/report.md"
cat "$OUT/report.md"
