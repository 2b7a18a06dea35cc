#!/usr/bin/env bash
# Conversion intake figures, side by side in one run on this machine (spool
# sink, the release binary, default fsync settings):
#   1. keep-alive redirects alone vs with 500 conversions/s posted in
#      parallel (alternating rounds; target: with / alone >= 0.97);
#   2. what one edge accepts server to server in JSON Lines batches of 100
#      (conversions/s), and the intake's answer time (it waits for the fsync).
# Usage: loadtest/conversions.sh [ROUNDS] [SECONDS]
# Writes loadtest/results/<date>-<host>-conversions/{report.md,raw/*}.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
SECS=${2:-10}
. loadtest/lib.sh
for tool in wrk curl; do need $tool; done
command -v oha >/dev/null || cargo install oha --locked
build_refedge
results_dir conversions
work_dir

TOKEN=loadtest-conversions-token-0123
PUBLIC=127.0.0.1:18081
ADMIN=127.0.0.1:19091
python3 loadtest/gen_links.py 10000 42 >"$WORK/links.jsonl" 2>/dev/null
awk -F'"' '!/"domain"/ && n++ < 1000 {print $4}' "$WORK/links.jsonl" >"$WORK/codes.txt"
cat >"$WORK/redirects.lua" <<'LUA'
local codes = {}
for line in io.lines(os.getenv("CODES")) do codes[#codes + 1] = line end
math.randomseed(42)
wrk.headers["User-Agent"] = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) Safari/604.1"
request = function() return wrk.format("GET", "/" .. codes[math.random(#codes)]) end
LUA
export CODES="$WORK/codes.txt"

REFEDGE_SERVER_LISTEN=$PUBLIC REFEDGE_ADMIN_LISTEN=$ADMIN \
  REFEDGE_LINKS_FILE="$WORK/links.jsonl" REFEDGE_EVENTS_SPOOL_DIR="$WORK/spool" \
  REFEDGE_CONVERSIONS_TOKENS=$TOKEN REFEDGE_ATTRIBUTION_SECRET=loadtest-secret-0123456789 \
  REFEDGE_LOG_LEVEL=warn "$BIN" serve --config /dev/null 2>"$WORK/edge.log" &
EDGE=$!
wait_ready "$ADMIN" $EDGE "$WORK/edge.log"

# A click id for the conversions to name.
CLICK=$(curl -s -A 'Mozilla/5.0' -o /dev/null -w '%{redirect_url}' "http://$PUBLIC/$(sed -n 1p "$WORK/codes.txt")")
CLICK=${CLICK##*rf_click=}
conversions_lua "$WORK/batch.lua" 100 "',\"click_id\":\"$CLICK\"'"

echo "round mode rps" >"$WORK/rows"
for r in $(seq 1 "$ROUNDS"); do
  for mode in alone with_conversions; do
    if [ $mode = with_conversions ]; then
      oha -z $((SECS + 2))s -q 500 -c 128 --no-tui --output-format json -m POST \
        -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
        -d "{\"event_id\":\"bg-$r\",\"name\":\"lead\",\"click_id\":\"$CLICK\"}" \
        "http://$PUBLIC/v1/conversions" >"$OUT/raw/background-$r.json" 2>/dev/null &
      BG=$!
      sleep 1
    fi
    wrk -t2 -c64 -d${SECS}s -s "$WORK/redirects.lua" "http://$PUBLIC" >"$OUT/raw/redirects-$mode-$r.txt"
    rps=$(awk '/Requests\/sec/ {print $2}' "$OUT/raw/redirects-$mode-$r.txt")
    echo "$r $mode $rps" | tee -a "$WORK/rows"
    [ $mode = with_conversions ] && wait $BG
  done
done
cp "$WORK/rows" "$OUT/raw/rows.txt"

# Intake capacity: batches of 100, 8 connections, and the answer times.
wrk -t2 -c64 -d${SECS}s --latency -s "$WORK/batch.lua" "http://$PUBLIC/v1/conversions" >"$OUT/raw/batches.txt"
# Answer time of single conversions at a steady 200/s.
oha -z ${SECS}s -q 200 -c 8 --no-tui --output-format json -m POST \
  -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
  -d "{\"event_id\":\"single\",\"name\":\"lead\",\"click_id\":\"$CLICK\"}" \
  "http://$PUBLIC/v1/conversions" >"$OUT/raw/single-latency.json" 2>/dev/null
kill -TERM $EDGE; wait $EDGE 2>/dev/null || true

python3 - "$OUT" "$ROUNDS" "$SECS" <<'PY'
import json, statistics, sys, os, re
out, rounds, secs = sys.argv[1], sys.argv[2], sys.argv[3]
rows = [l.split() for l in open(f"{out}/raw/rows.txt").read().splitlines()[1:]]
med = lambda mode: statistics.median(float(r[2]) for r in rows if r[1] == mode)
alone, busy = med("alone"), med("with_conversions")
bg = [json.load(open(f"{out}/raw/background-{r}.json")) for r in range(1, int(rounds) + 1)]
bg_rate = statistics.median(b["summary"]["requestsPerSec"] for b in bg)
bg_codes = {}
for b in bg:
    for k, v in b.get("statusCodeDistribution", {}).items():
        bg_codes[k] = bg_codes.get(k, 0) + v
batches = open(f"{out}/raw/batches.txt").read()
batch_rps = float(re.search(r"Requests/sec:\s+([\d.]+)", batches).group(1))
lat = {m.group(1): m.group(2) for m in re.finditer(r"^\s+(50|99)%\s+(\S+)", batches, re.M)}
single = json.load(open(f"{out}/raw/single-latency.json"))
p = single["latencyPercentiles"]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
with open(f"{out}/report.md", "w") as f:
    f.write("# Conversion intake\n\n")
    f.write(f"Command: `bash loadtest/conversions.sh {rounds} {secs}`; spool sink, release build, default "
            f"flush (20 ms) and fsync settings; {os.cpu_count()} cores, {cpu}; wrk, oha and the edge share them.\n\n")
    f.write("| measure | value | target |\n| --- | ---: | ---: |\n")
    f.write(f"| keep-alive redirects/s, alone (median of {rounds}) | {alone:.0f} | |\n")
    f.write(f"| keep-alive redirects/s, with conversions posted in parallel | {busy:.0f} | |\n")
    f.write(f"| ratio | {busy / alone:.3f} | ≥ 0.97 |\n")
    f.write(f"| conversions/s posted in parallel (achieved; answers {bg_codes}) | {bg_rate:.0f} | 500 |\n")
    f.write(f"| conversions/s accepted, JSON Lines batches of 100, 64 connections | {batch_rps * 100:.0f} | |\n")
    f.write(f"| batch answer time p50 / p99 | {lat.get('50')} / {lat.get('99')} | |\n")
    f.write(f"| single conversion answer time at 200/s, p50 / p99 | {p['p50'] * 1000:.1f} / {p['p99'] * 1000:.1f} ms | |\n")
print(open(f"{out}/report.md").read())
PY
