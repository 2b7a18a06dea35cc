#!/usr/bin/env bash
# Real disk faults at saturation: the spool lives on a FUSE pass-through
# (loadtest/faultfs.py) whose writes stall or fail on demand, and wrk
# (-t2 -c64, keep-alive, 5,000 random codes) drives the edge at its maximum
# rate. Cases, each on a fresh edge and spool:
#   healthy   the same load, nothing wrong
#   stallN    every write stalls for N s a third into the run, for each N in
#             STALLS (default "3 6 10": a 10 s stall is what the default
#             events.stall_buffer_secs must ride out in memory)
#   fail      writes fail with EIO (a dying disk) for the whole measured run
#   noisy     a neighbour writes and fsyncs 256 MiB files on the spool's file system
# Per case: req/s, wrk's longest answer, the answers the edge gave
# (refedge_requests_total), the events in the spool, every dropped_* and
# spool_failed, and the hand-off waits (count, p99 and max bucket of
# refedge_events_wait_seconds), the edge's peak memory (VmHWM), what /readyz
# said while the disk stalled (polled every 200 ms), and the writes that took
# a second or more (what RefedgeSpoolStalled fires on). With several binaries
# (BINS="A B") each case runs for each, in turn: a before/after in one run.
# SECS leaves room for the longest stall after a third of it.
# Usage: loadtest/disk-faults.sh [SECS]   env: BINS (default: the release build), STALLS, OUT
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-18}
. loadtest/lib.sh
for tool in wrk curl; do need $tool; done
need fusermount fuse
[ -e /usr/lib/x86_64-linux-gnu/libfuse.so.2 ] || need fusermount libfuse2
python3 -c 'import fuse' 2>/dev/null ||
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore fusepy==3.0.1
if [ -z "${BINS:-}" ]; then build_refedge; BINS=$BIN; fi
results_dir disk-faults
work_dir
mkdir -p "$WORK/backing" "$WORK/mnt" "$WORK/control"
python3 loadtest/faultfs.py "$WORK/backing" "$WORK/mnt" "$WORK/control" 2>"$WORK/faultfs.log" &
FS=$!
trap 'fusermount -u "$WORK/mnt" 2>/dev/null; kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
until mountpoint -q "$WORK/mnt"; do sleep 0.1; done
wrk_random 5000
PUBLIC=127.0.0.1:18283
ADMIN=127.0.0.1:19293

# sum_metric NAME_REGEX: the sum of the matching series in $WORK/metrics.txt.
sum_metric() { awk -v re="$1" '$1 ~ re {s += $2} END {printf "%d", s}' "$WORK/metrics.txt"; }
echo "binary case req_per_s wrk_max_latency answered spooled dropped_queue_full spool_failed dropped_other waits wait_p99_le wait_max_le peak_rss_mib readyz slow_writes livez" >"$OUT/raw/rows.txt"
STALLS=${STALLS:-3 6 10}
for case in healthy $(printf 'stall%s ' $STALLS) fail noisy; do
  for bin in $BINS; do
    rm -rf "$WORK/backing/spool" "$WORK/control"/*
    REFEDGE_SERVER_LISTEN=$PUBLIC REFEDGE_ADMIN_LISTEN=$ADMIN REFEDGE_LINKS_FILE="$WORK/links.jsonl" \
      REFEDGE_EVENTS_SPOOL_DIR="$WORK/mnt/spool" REFEDGE_ATTRIBUTION_SECRET=loadtest-secret-0123456789 \
      REFEDGE_LOG_LEVEL=warn "$bin" serve --config /dev/null 2>>"$WORK/edge.log" &
    P=$!
    until curl -fs "http://$ADMIN/readyz" >/dev/null 2>&1; do sleep 0.05; done
    wrk -t2 -c64 -d2s -s "$WORK/random.lua" "http://$PUBLIC" >/dev/null
    curl -s "http://$ADMIN/metrics" >"$WORK/metrics-before.txt"
    case $case in
      stall*)
        (sleep $((SECS / 3)); touch "$WORK/control/stall"; sleep "${case#stall}"; rm -f "$WORK/control/stall") &
        STALLER=$!
        # What /readyz says while the disk stalls: its first answer that is
        # not plain "ready", else "ready".
        rm -f "$WORK/readyz.txt"
        (sleep $((SECS / 3)); end=$((SECONDS + ${case#stall}))
         while [ $SECONDS -lt $end ]; do
           said=$(curl -s -m 1 "http://$ADMIN/readyz" || true)
           if [ -n "$said" ] && [ "$said" != ready ]; then echo "$said" >"$WORK/readyz.txt"; break; fi
           sleep 0.2
         done) &
        PROBE=$!
        ;;
      fail) touch "$WORK/control/fail" ;;
      noisy) noise_start "$WORK/backing" ;;
    esac
    wrk -t2 -c64 -d"${SECS}s" --latency -s "$WORK/random.lua" "http://$PUBLIC" >"$WORK/wrk.txt"
    noise_stop
    livez=$(curl -s -o /dev/null -w '%{http_code}' "http://$ADMIN/livez")
    [ -n "${STALLER:-}" ] && { wait "$STALLER"; STALLER=; }
    readyz=-
    if [ -n "${PROBE:-}" ]; then
      wait "$PROBE"; PROBE=
      readyz=$(grep -q 'degraded: spool' "$WORK/readyz.txt" 2>/dev/null && echo degraded || echo ready)
    fi
    peak_rss=$(awk '/VmHWM/ {printf "%d", $2 / 1024}' "/proc/$P/status")
    rm -f "$WORK/control"/*
    sleep 1
    curl -s "http://$ADMIN/metrics" >"$WORK/metrics.txt"
    kill -TERM $P; wait $P 2>/dev/null || true
    cp "$WORK/wrk.txt" "$OUT/raw/$case-$(basename "$bin")-wrk.txt"
    cp "$WORK/metrics.txt" "$OUT/raw/$case-$(basename "$bin")-metrics.txt"
    spooled=$(cat "$WORK/backing/spool"/*.jsonl 2>/dev/null | grep -c '"type":"click"' || true)
    # The warm-up's answers and events are in both counts: the spool is whole.
    answered=$(sum_metric '^refedge_requests_total')
    rps=$(awk '/Requests\/sec/ {printf "%.0f", $2}' "$WORK/wrk.txt")
    max=$(awk '/Latency/ && !/Distribution/ {print $4; exit}' "$WORK/wrk.txt")
    echo "$(basename "$bin") $case $rps $max $answered $spooled $(sum_metric 'result="dropped_queue_full"') \
$(sum_metric 'result="spool_failed"') $(sum_metric 'result="dropped_(closed|spool_full)"') \
$(sum_metric '^refedge_events_wait_seconds_count') $(bucket_le "$WORK/metrics.txt" refedge_events_wait_seconds 0.99) \
$(bucket_le "$WORK/metrics.txt" refedge_events_wait_seconds 1) $peak_rss $readyz \
$(( $(sum_metric '^refedge_spool_write_seconds_count') - $(sum_metric '^refedge_spool_write_seconds_bucket\{le="1"\}') )) \
livez=$livez" | tee -a "$OUT/raw/rows.txt"
  done
done

{
  echo "# Disk faults at saturation"
  echo
  echo "Command: \`$(printf '%s ' BINS=\""$BINS"\" bash loadtest/disk-faults.sh "$SECS")\`; $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); wrk -t2 -c64 for ${SECS} s after a 2 s warm-up, 5,000 links; the spool on a FUSE pass-through (\`loadtest/faultfs.py\`, fusepy over libfuse2) whose writes stall or fail on demand."
  echo
  echo "| binary | case | req/s | wrk's longest answer | answered | spooled | dropped_queue_full | spool_failed | other drops | waits | wait p99 ≤ | longest wait ≤ | peak RSS MiB | /readyz in the stall | writes ≥ 1 s | /livez |"
  echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- |"
  tail -n +2 "$OUT/raw/rows.txt" | awk '{sub("livez=", "", $16); printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16}'
  echo
  echo "answered = \`refedge_requests_total\` (warm-up included); spooled = click lines in the spool after SIGTERM; a click is kept when answered = spooled. /readyz: degraded when an answer during the stall said \`ready (degraded: spool: …)\`. writes ≥ 1 s: spool writes that took a second or more (\`refedge_spool_write_seconds\`), what \`RefedgeSpoolStalled\` fires on."
} >"$OUT/report.md"
cat "$OUT/report.md"
