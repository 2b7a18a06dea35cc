#!/usr/bin/env bash
# Where refedge's CPU goes under the harness's keep-alive load: CPU µs per
# request for each thread (from /proc/PID/task/*/stat) and a perf profile of
# the release binary (share per thread, then the top symbols of each thread).
# Usage: loadtest/profile.sh [spool|kafka]   (default spool)
# Env: LINKS (100000), SECS (10), CLIENTS (wrk's threads, 2; 1 for the
#   one-client case), RF_BIN, OUT (result directory), RF_CONFIG (a config
#   file for refedge instead of none: kafka.properties to compare).
# Writes loadtest/results/<date>-<host>-profile/<sink>[-one-client].md. (perf's output is
# cut with awk, not head, so that no pipe is closed early under pipefail.)
set -euo pipefail
cd "$(dirname "$0")/.."
SINK=${1:-spool}
case $SINK in spool | kafka) ;; *) echo "usage: $0 [spool|kafka]" >&2; exit 2 ;; esac
LINKS=${LINKS:-100000} SECS=${SECS:-10} CLIENTS=${CLIENTS:-2}
. loadtest/lib.sh
for tool in wrk curl bc; do need $tool; done
need perf linux-perf
[ "$SINK" = kafka ] && need_tansu
build_refedge
results_dir profile
work_dir
PORT=18090 ADMIN=127.0.0.1:19099 BROKER_PORT=19393

python3 loadtest/gen_links.py "$LINKS" 42 >"$WORK/links.jsonl" 2>/dev/null
grep -v '"domain"' "$WORK/links.jsonl" | cut -d'"' -f4 >"$WORK/codes.txt"
cat >"$WORK/random.lua" <<'LUA'
local codes = {}
for line in io.lines(os.getenv("CODES")) do codes[#codes + 1] = line end
math.randomseed(42)
wrk.headers["User-Agent"] = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 Safari/604.1"
request = function()
  return wrk.format("GET", "/" .. codes[math.random(#codes)] .. "?utm_campaign=spring")
end
LUA

if [ "$SINK" = kafka ]; then
  tansu broker --listener-url tcp://127.0.0.1:$BROKER_PORT --advertised-listener-url tcp://127.0.0.1:$BROKER_PORT \
    --storage-engine memory://tansu/ >"$WORK/tansu.log" 2>&1 &
  until (exec 3<>/dev/tcp/127.0.0.1/$BROKER_PORT) 2>/dev/null; do sleep 0.05; done
  tansu topic create refedge.clicks --partitions 3 --broker tcp://127.0.0.1:$BROKER_PORT >/dev/null 2>&1 || true
fi
REFEDGE_SERVER_LISTEN=127.0.0.1:$PORT REFEDGE_ADMIN_LISTEN=$ADMIN REFEDGE_LINKS_FILE="$WORK/links.jsonl" \
  REFEDGE_EVENTS_SPOOL_DIR="$WORK/spool" REFEDGE_EVENTS_SINK=$SINK REFEDGE_KAFKA_BROKERS=127.0.0.1:$BROKER_PORT \
  REFEDGE_ATTRIBUTION_SECRET=loadtest-secret-0123456789 REFEDGE_KAFKA_SHUTDOWN_TIMEOUT_MS=200 \
  REFEDGE_LOG_LEVEL=warn "$BIN" serve --config "${RF_CONFIG:-/dev/null}" 2>"$WORK/edge.log" &
PID=$!
until curl -fs "http://$ADMIN/readyz" >/dev/null 2>&1; do sleep 0.05; done

thread_ticks() { for t in /proc/$PID/task/*; do echo "$(cat "$t/comm") $(awk '{print $14 + $15}' "$t/stat")"; done | sort; }
thread_ticks >"$WORK/before"
CODES="$WORK/codes.txt" wrk -t"$CLIENTS" -c64 -d"${SECS}s" -s "$WORK/random.lua" "http://127.0.0.1:$PORT" >"$WORK/wrk.txt" &
WRK=$!
sleep $((SECS / 3))
perf record -F 2000 -g -p "$PID" -o "$WORK/perf.data" -- sleep $((SECS / 2)) >/dev/null 2>&1
wait $WRK
thread_ticks >"$WORK/after"
kill -INT $PID
wait $PID || true

REQS=$(awk '/requests in/ {print $1}' "$WORK/wrk.txt")
RPS=$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk.txt")
HZ=$(getconf CLK_TCK)
report() {
  echo "# Where refedge's CPU goes: $SINK sink, $CLIENTS client thread(s)"
  echo
  echo "Command: \`CLIENTS=$CLIENTS bash loadtest/profile.sh $SINK\`; $LINKS links, wrk -t$CLIENTS -c64 for $SECS s (keep-alive, random codes), perf at 2 kHz in the middle of the run. $(nproc) cores; the load generator$([ "$SINK" = kafka ] && echo " and the broker") on the same cores."
  echo
  echo "$RPS req/s. CPU µs per request by thread (threads of one name summed):"
  echo
  echo "| thread | µs/request |"
  echo "| --- | ---: |"
  join <(awk '{a[$1] += $2} END {for (k in a) print k, a[k]}' "$WORK/before" | sort) \
       <(awk '{a[$1] += $2} END {for (k in a) print k, a[k]}' "$WORK/after" | sort) |
    awk -v r="$REQS" -v hz="$HZ" '{d = ($3 - $2) / hz * 1e6 / r; if (d >= 0.01) printf "| %s | %.2f |\n", $1, d}'
  echo
  echo "## Samples by thread"
  echo
  echo '```'
  perf report -i "$WORK/perf.data" --no-children --sort comm -g none 2>/dev/null | awk '/%/ && n++ < 10'
  echo '```'
  for comm in $(perf report -i "$WORK/perf.data" --no-children --sort comm -g none 2>/dev/null | awk '/%/ && $1 + 0 >= 3 {print $2}'); do
    echo
    echo "## $comm: kernel and user space, then top symbols (shares of all samples)"
    echo
    echo '```'
    perf report -i "$WORK/perf.data" --no-children --comm "$comm" --sort dso -g none 2>/dev/null | awk '/%/ && n++ < 4'
    echo
    perf report -i "$WORK/perf.data" --no-children --comm "$comm" --sort dso,sym -g none 2>/dev/null | awk '/%/ && n++ < 25'
    echo '```'
  done
}
NAME=$SINK
if [ "$CLIENTS" = 1 ]; then NAME=$SINK-one-client; fi
report >"$OUT/$NAME.md"
rm -rf "$OUT/raw"
echo "wrote $OUT/$NAME.md"
