#!/usr/bin/env bash
# Soak: refedge with the Kafka sink shipping to a local Tansu broker, driven
# at half its measured capacity for DURATION seconds (default 600), in 30 s
# slices of wrk (1000 random links, keep-alive). After each slice: the edge's
# resident memory, open descriptors, the slice's request rate and errors
# (socket errors and answers other than 3xx), and events dropped or failed.
# Targets: memory growth <= 5% after the 2-minute warm-up, descriptors flat,
# 0 errors.
# Usage: loadtest/soak.sh [DURATION_SECONDS]
# Writes loadtest/results/<date>-<host>-soak/{report.md,raw/*}.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-600}
SLICE=30
WARMUP=${WARMUP:-120}
. loadtest/lib.sh
for tool in wrk bc curl; do need $tool; done
need_tansu
need_matplotlib
build_refedge
results_dir soak
work_dir

python3 loadtest/gen_links.py 1000 7 >"$WORK/links.jsonl" 2>/dev/null
# Links bound to a brand domain answer only on that host: drive the others.
grep -v '"domain"' "$WORK/links.jsonl" | cut -d'"' -f4 >"$WORK/codes.txt"
cat >"$WORK/soak.lua" <<'LUA'
local codes = {}
for line in io.lines(os.getenv("CODES")) do codes[#codes + 1] = line end
math.randomseed(7)
local pause = tonumber(os.getenv("PAUSE_MS") or "0")
wrk.headers["User-Agent"] = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/126.0 Safari/537.36"
request = function()
  return wrk.format("GET", "/" .. codes[math.random(#codes)] .. "?utm_source=soak")
end
delay = function() return pause end
LUA

BROKER_PORT=19392
ADMIN=127.0.0.1:19090
PUBLIC=127.0.0.1:18080
tansu broker --listener-url tcp://127.0.0.1:$BROKER_PORT --advertised-listener-url tcp://127.0.0.1:$BROKER_PORT \
  --storage-engine memory://tansu/ >"$WORK/tansu.log" 2>&1 &
until (exec 3<>/dev/tcp/127.0.0.1/$BROKER_PORT) 2>/dev/null; do sleep 0.05; done
tansu topic create refedge.clicks --partitions 3 --broker tcp://127.0.0.1:$BROKER_PORT >/dev/null

REFEDGE_SERVER_LISTEN=$PUBLIC REFEDGE_ADMIN_LISTEN=$ADMIN REFEDGE_LINKS_FILE="$WORK/links.jsonl" \
REFEDGE_EVENTS_SPOOL_DIR="$WORK/spool" REFEDGE_EVENTS_SINK=kafka REFEDGE_KAFKA_BROKERS=127.0.0.1:$BROKER_PORT \
REFEDGE_ATTRIBUTION_SECRET=loadtest-secret-0123456789 REFEDGE_LOG_LEVEL=warn \
  "$BIN" serve --config /dev/null 2>"$OUT/raw/edge.log" &
EDGE=$!
until curl -fs "http://$ADMIN/readyz" >/dev/null 2>&1; do sleep 0.05; done
metric() { curl -s "http://$ADMIN/metrics" | awk -v m="$1" '$1 == m {print $2}'; }

export CODES="$WORK/codes.txt"
PAUSE_MS=0 wrk -t2 -c32 -d10s -s "$WORK/soak.lua" "http://$PUBLIC" >"$OUT/raw/capacity.txt"
MAX=$(awk '/Requests\/sec/ {print $2}' "$OUT/raw/capacity.txt")
# wrk pauses in whole milliseconds: each connection waits 5 ms between
# requests, and there are enough of them for about half of MAX.
export PAUSE_MS=5
CONNS=$(echo "($MAX / 2) * $PAUSE_MS / 1000" | bc)
echo "capacity ${MAX} req/s; soak at about half: ${CONNS} connections pausing ${PAUSE_MS} ms"

echo "t_s rss_kib fds req_s errors dropped" >"$OUT/raw/samples.txt"
t=0
while [ $t -lt "$DURATION" ]; do
  wrk -t2 -c$CONNS -d${SLICE}s -s "$WORK/soak.lua" "http://$PUBLIC" >"$WORK/slice.txt"
  t=$((t + SLICE))
  rss=$(awk '/VmRSS/ {print $2}' /proc/$EDGE/status)
  fds=$(ls /proc/$EDGE/fd | wc -l)
  rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/slice.txt")
  errs=$(awk '/Socket errors/ {for (i = 4; i <= NF; i += 2) s += $i} /Non-2xx or 3xx/ {s += $NF} END {print s + 0}' "$WORK/slice.txt")
  # wrk counts 3xx as fine; refedge answers these codes with 302 only, so any
  # other status (404, 5xx) shows as "Non-2xx or 3xx".
  dropped=0
  for r in dropped_queue_full dropped_closed spool_failed; do
    v=$(metric "refedge_events_total{result=\"$r\"}"); dropped=$((dropped + ${v:-0}))
  done
  echo "$t $rss $fds $rps $errs $dropped" | tee -a "$OUT/raw/samples.txt"
done
lag=$(metric refedge_shipper_lag_seconds)
kill -TERM $EDGE; wait $EDGE || true

python3 - "$OUT" "$WARMUP" "$MAX" "$PAUSE_MS" "$CONNS" "$DURATION" "${lag:-0}" <<'PY'
import sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
out, warmup, cap, pause, conns, duration, lag = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6], sys.argv[7]
rows = [l.split() for l in open(f"{out}/raw/samples.txt").read().splitlines()[1:]]
t = [int(r[0]) for r in rows]; rss = [int(r[1]) for r in rows]; fds = [int(r[2]) for r in rows]
rps = [float(r[3]) for r in rows]; errs = sum(int(r[4]) for r in rows); dropped = int(rows[-1][5])
after = [r for tt, r in zip(t, rss) if tt >= warmup]
base = after[0]
growth = (max(after) - base) / base * 100
fig, ax = plt.subplots(figsize=(8, 4))
ax.plot(t, [r / 1024 for r in rss], label="resident memory (MiB)")
ax.set_xlabel("seconds"); ax.set_ylabel("MiB"); ax2 = ax.twinx()
ax2.plot(t, fds, color="tab:orange", label="open descriptors"); ax2.set_ylabel("descriptors")
ax.set_ylim(bottom=0); ax2.set_ylim(bottom=0)
ax.axvline(warmup, color="grey", linestyle=":"); fig.legend(loc="lower right"); fig.tight_layout()
fig.savefig(f"{out}/soak.png", dpi=100)
def ok(b): return "met" if b else "**missed**"
with open(f"{out}/report.md", "w") as f:
    f.write(f"""# Soak: Kafka sink on, half capacity

Command: `bash loadtest/soak.sh {duration}`. refedge release build, `events.sink = "kafka"` shipping to a
local Tansu broker on the same 2 cores, 1000 links, wrk with {conns} keep-alive connections each pausing
{pause} ms between requests (capacity measured first: {cap:.0f} req/s). Samples every 30 s in `raw/samples.txt`,
plot in `soak.png`. Memory and descriptors are read between slices (connections closed),
so descriptors that stay open would show as growth.

| measure | value | target |
| --- | --- | --- |
| mean rate | {sum(rps) / len(rps):.0f} req/s | about half of {cap:.0f} |
| resident memory after warm-up ({warmup} s) | {base / 1024:.1f} MiB → max {max(after) / 1024:.1f} MiB, end {rss[-1] / 1024:.1f} MiB | |
| memory growth after warm-up | {growth:.2f}% | ≤ 5%: {ok(growth <= 5)} |
| open descriptors | min {min(fds)}, max {max(fds)} | flat: {ok(max(fds) - min(fds) <= 2)} |
| errors (socket errors + non-3xx answers) | {errs} | 0: {ok(errs == 0)} |
| events dropped or failed | {dropped} | 0 |
| shipper lag at the end | {float(lag):.2f} s | |
""")
print(open(f"{out}/report.md").read())
PY
