#!/usr/bin/env bash
# The Kafka matcher's figures, on this machine, against a local Tansu broker
# (in-memory storage; broker, edge and matcher share the cores):
#   1. clicks indexed per second (and per CPU-second of the matcher) from a
#      pre-filled clicks topic; bytes per indexed click on disk and in memory;
#   2. conversions matched per second from a pre-filled conversions topic
#      (a restarted matcher: its index resumes, nothing is rebuilt);
#   3. delay from a conversion's receipt at the edge to its attribution, at
#      about 500 conversions/s posted through the intake (p50/p99 from the
#      matcher's refedge_match_delay_seconds histogram).
# MIX=rewards: a quarter of the conversions name a referral code instead of
# a click id and 15 % reverse an earlier one (gen_events.py); the state's
# bytes per conversion kept are reported. BINS="OLD NEW": steps 1 and 2 for
# each binary in turn on the same events (topics of their own), step 3 for
# the last: a before/after in one run.
# Usage: loadtest/matcher.sh [CLICKS] [CONVERSIONS] [PARTITIONS]
# Writes loadtest/results/<date>-<host>-matcher/{report.md,raw/*}.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-500000}
M=${2:-50000}
PARTS=${3:-1}
. loadtest/lib.sh
for tool in wrk curl python3; do need $tool; done
need_tansu
build_refedge
results_dir matcher
work_dir

TOKEN=loadtest-conversions-token-0123
BROKER=127.0.0.1:19492
PUBLIC=127.0.0.1:18082
ADMIN=127.0.0.1:19092
MATCH=127.0.0.1:19093
MIX=${MIX:-clicks}
BINS=${BINS:-$BIN}
{
  printf '{"code":"demo","target":"https://brand.example/welcome","advocate_id":"adv-1","campaign_id":"camp-1"}\n'
  for i in $(seq -w 0 99); do
    printf '{"code":"CPN0%s","target":"https://brand.example/c","advocate_id":"adv-cpn-%s","advocate_domain":"cpn0%s.example"}\n' "$i" "$i" "$i"
  done
} >"$WORK/links.jsonl"
# Topics of the binary being measured (steps 1 and 2 of each on their own).
TOPICS=()
topics_of() { # $1 = suffix
  TOPICS=(REFEDGE_KAFKA_CLICKS_TOPIC=refedge.clicks$1 REFEDGE_KAFKA_CONVERSIONS_TOPIC=refedge.conversions$1
    REFEDGE_KAFKA_ATTRIBUTIONS_TOPIC=refedge.attributions$1 REFEDGE_MATCH_GROUP_ID=refedge-match$1)
}

edge_up() { # $1 = spool dir, $2 = sink
  REFEDGE_SERVER_LISTEN=$PUBLIC REFEDGE_ADMIN_LISTEN=$ADMIN REFEDGE_LINKS_FILE="$WORK/links.jsonl" \
  REFEDGE_EVENTS_SPOOL_DIR="$1" REFEDGE_EVENTS_SINK=$2 REFEDGE_KAFKA_BROKERS=$BROKER \
  REFEDGE_CONVERSIONS_TOKENS=$TOKEN REFEDGE_ATTRIBUTION_SECRET=loadtest-secret-0123456789 \
  env "${TOPICS[@]}" REFEDGE_LOG_LEVEL=warn "$BIN" serve --config /dev/null 2>>"$WORK/edge.log" &
  EDGE=$!
  until curl -fs "http://$ADMIN/readyz" >/dev/null 2>&1; do sleep 0.05; done
}
edge_down() { kill -TERM "$EDGE"; wait "$EDGE" 2>/dev/null || true; }
matcher_start() {
  REFEDGE_KAFKA_BROKERS=$BROKER REFEDGE_MATCH_STATE_DIR="$WORK/match$SUFFIX" REFEDGE_MATCH_ADMIN_LISTEN=$MATCH \
  REFEDGE_LINKS_FILE="$WORK/links.jsonl" \
  env "${TOPICS[@]}" REFEDGE_LOG_LEVEL=warn "$MATCHER_BIN" match --config /dev/null 2>>"$WORK/matcher.log" &
  MATCHER=$!
  until curl -fs "http://$MATCH/livez" >/dev/null 2>&1; do sleep 0.01; done
}
matcher_up() {
  matcher_start
  until curl -fs "http://$MATCH/readyz" >/dev/null 2>&1; do
    kill -0 $MATCHER 2>/dev/null || { cat "$WORK/matcher.log"; exit 1; }
    sleep 0.05
  done
}
matcher_down() { kill -TERM "$MATCHER"; wait "$MATCHER" 2>/dev/null || true; }
# sum of a metric's series at $1 (admin address) named $2
metric() { curl -s "http://$1/metrics" | awk -v m="$2" '$1 == m || index($1, m "{") == 1 {s += $2} END {print s + 0}'; }
wait_metric() { # address, name, value
  until [ "$(metric "$1" "$2")" -ge "$3" ] 2>/dev/null; do sleep 0.05; done
}
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
now() { date +%s.%N; }

echo "== templates: one real click and one real conversion from the edge"
edge_up "$WORK/template-spool" spool
CLICK=$(curl -s -A 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) Edg/131.0' -o /dev/null -w '%{redirect_url}' "http://$PUBLIC/demo")
CLICK=${CLICK##*rf_click=}
curl -fs -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
  -d "{\"event_id\":\"template\",\"name\":\"deal_won\",\"click_id\":\"$CLICK\",\"value_minor\":125000,\"currency\":\"EUR\",\"customer_id\":\"acct-4711\"}" \
  "http://$PUBLIC/v1/conversions" >/dev/null
edge_down
grep -h '"type":"click"' "$WORK"/template-spool/*.jsonl | head -1 >"$WORK/click.json"
grep -h '"type":"conversion"' "$WORK"/template-spool/*.jsonl | head -1 >"$WORK/conversion.json"
python3 loadtest/gen_events.py "$WORK/click.json" "$WORK/conversion.json" "$N" "$M" "$WORK/gen" 42 "$MIX"
CONVERSION_BYTES=$(wc -c <"$WORK/gen/conversions/0000000000000001.jsonl")
CLICK_BYTES=$(wc -c <"$WORK/gen/clicks/0000000000000001.jsonl")

tansu broker --listener-url tcp://$BROKER --advertised-listener-url tcp://$BROKER \
  --storage-engine memory://tansu/ >"$WORK/tansu.log" 2>&1 &
until (exec 3<>/dev/tcp/${BROKER%:*}/${BROKER#*:}) 2>/dev/null; do sleep 0.05; done
ROWS=()
k=0
for MATCHER_BIN in $BINS; do
k=$((k + 1)); SUFFIX=-$k; topics_of $SUFFIX
for t in refedge.clicks refedge.conversions refedge.attributions; do
  tansu topic create $t$SUFFIX --partitions "$PARTS" --broker tcp://$BROKER >/dev/null
done

echo "== [$MATCHER_BIN] pre-filling the clicks topic with $N clicks (the edge ships a spool)"
cp -r "$WORK/gen/clicks" "$WORK/clicks$SUFFIX"
edge_up "$WORK/clicks$SUFFIX" kafka
wait_metric $ADMIN 'refedge_events_total{result="delivered"}' "$N"
edge_down

echo "== [$MATCHER_BIN] 1. indexing"
matcher_start # CPU counted from the start; wall time from the first indexed click
RSS0=$(rss_kib $MATCHER)
T0=$(cpu_ticks $MATCHER)
wait_metric $MATCH refedge_match_clicks_indexed_total 1
W0=$(now)
wait_metric $MATCH refedge_match_clicks_indexed_total "$N"
W1=$(now)
T1=$(cpu_ticks $MATCHER)
sleep 1.2 # the gauges are published once a second
RSS1=$(rss_kib $MATCHER)
INDEX_BYTES=$(metric $MATCH refedge_match_index_bytes)
INDEX_CLICKS=$(metric $MATCH refedge_match_index_clicks)
REBUILDS1=$(metric $MATCH refedge_match_rebuilds_total)
matcher_down

echo "== [$MATCHER_BIN] pre-filling the conversions topic with $M conversions"
cp -r "$WORK/gen/conversions" "$WORK/conversions$SUFFIX"
edge_up "$WORK/conversions$SUFFIX" kafka
wait_metric $ADMIN 'refedge_events_total{result="delivered"}' "$M"
edge_down

echo "== [$MATCHER_BIN] 2. matching (restarted matcher)"
matcher_up
T2=$(cpu_ticks $MATCHER)
W2=$(now)
wait_metric $MATCH refedge_match_attributions_total "$M"
W3=$(now)
T3=$(cpu_ticks $MATCHER)
sleep 1.2
STATE_BYTES=$(metric $MATCH refedge_match_index_bytes)
# What the state keeps per conversion is measured at the next expiry (each
# minute); a binary without the gauge says nothing.
if curl -s "http://$MATCH/metrics" | grep -q '^refedge_match_remembered_conversions'; then
  until [ "$(metric $MATCH refedge_match_remembered_conversions)" -ge "$M" ] 2>/dev/null; do sleep 1; done
fi
REMEMBERED=$(metric $MATCH refedge_match_remembered_conversions)
REMEMBERED_BYTES=$(metric $MATCH refedge_match_remembered_bytes)
curl -s "http://$MATCH/metrics" >"$OUT/raw/matcher$SUFFIX-metrics.txt"
MATCHED=$(metric $MATCH 'refedge_match_attributions_total{result="matched"}')
REBUILDS2=$(metric $MATCH refedge_match_rebuilds_total)
matcher_down
ROWS+=("$MATCHER_BIN $W0 $W1 $T0 $T1 $W2 $W3 $T2 $T3 $RSS0 $RSS1 $INDEX_BYTES $INDEX_CLICKS $STATE_BYTES $MATCHED $REBUILDS1 $REBUILDS2 $REMEMBERED $REMEMBERED_BYTES")
done
printf '%s\n' "${ROWS[@]}" >"$OUT/raw/rows.txt"

echo "== 3. receipt-to-attribution delay at ~500 conversions/s"
matcher_up
edge_up "$WORK/live-spool" kafka
conversions_lua "$WORK/live.lua" 10 "',\"click_id\":\"' .. ids[math.random(#ids)] .. '\"'" \
  "local ids = {}
for line in io.lines(\"$WORK/gen/click_ids.txt\") do ids[#ids + 1] = line end"
wrk -t1 -c10 -d20s -s "$WORK/live.lua" "http://$PUBLIC/v1/conversions" >"$OUT/raw/live-wrk.txt"
LIVE=$(( $(awk '/requests in/ {print $1}' "$OUT/raw/live-wrk.txt") * 10 ))
wait_metric $MATCH refedge_match_attributions_total "$LIVE"
curl -s "http://$MATCH/metrics" >"$OUT/raw/matcher-metrics.txt"
edge_down
matcher_down

python3 - "$OUT" "$N" "$M" "$PARTS" "$HZ" "$CLICK_BYTES" "$CONVERSION_BYTES" "$LIVE" "$MIX" <<'PY'
import os, re, sys
out, n, m, parts, hz, click_bytes, conversion_bytes, live, mix = sys.argv[1:]
n, m, hz = int(n), int(m), int(hz)
rows = [line.split() for line in open(f"{out}/raw/rows.txt")]
buckets = []
for line in open(f"{out}/raw/matcher-metrics.txt"):
    g = re.match(r'refedge_match_delay_seconds_bucket\{le="([^"]+)"\} (\S+)', line)
    if g:
        buckets.append((float("inf") if g.group(1) == "+Inf" else float(g.group(1)), float(g.group(2))))
total = buckets[-1][1] if buckets else 0
def quantile(q):  # as Prometheus' histogram_quantile: linear within the bucket
    rank, lo, below = q * total, 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            return lo + (le - lo) * (rank - below) / max(count - below, 1e-9)
        lo, below = le, count
    return float("nan")
secs = 20.0
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
bins = os.environ.get("BINS_LABELS", "").split() or [os.path.basename(r[0]) for r in rows]
with open(f"{out}/report.md", "w") as f:
    f.write("# Kafka matcher\n\n")
    f.write(f"Command: `MIX={mix} BINS=\"{' '.join(r[0] for r in rows)}\" bash loadtest/matcher.sh {n} {m} {parts}`; "
            f"release builds; {os.cpu_count()} cores, {cpu}; Tansu (in-memory), the edge and the matcher share them; "
            f"topics of {parts} partition(s); conversions: `{mix}` mix (gen_events.py).\n\n")
    f.write("| measure | " + " | ".join(f"`{b}`" for b in bins) + " | target |\n")
    f.write("| --- | " + " | ".join("---:" for _ in bins) + " | ---: |\n")
    def row(name, cells, target=""):
        f.write(f"| {name} | " + " | ".join(cells) + f" | {target} |\n")
    vals = []
    for (_, w0, w1, t0, t1, w2, w3, t2, t3, rss0, rss1, index_bytes, index_clicks, state_bytes,
         matched, rebuilds1, rebuilds2, remembered, remembered_bytes) in rows:
        idx_wall, idx_cpu = float(w1) - float(w0), (int(t1) - int(t0)) / hz
        match_wall, match_cpu = float(w3) - float(w2), (int(t3) - int(t2)) / hz
        vals.append(dict(idx_wall=idx_wall, idx_cpu=idx_cpu, match_wall=match_wall, match_cpu=match_cpu,
                         rss0=int(rss0), rss1=int(rss1), index_bytes=float(index_bytes),
                         index_clicks=float(index_clicks), state_bytes=float(state_bytes),
                         matched=float(matched), rebuilds=f"{rebuilds1} / {rebuilds2}",
                         remembered=float(remembered), remembered_bytes=float(remembered_bytes)))
    row("clicks indexed per second", [f"{n / v['idx_wall']:,.0f}" for v in vals])
    row("clicks indexed per CPU-second of the matcher (all its threads, start-up included)",
        [f"{n / max(v['idx_cpu'], 1e-9):,.0f}" for v in vals], "≥ 200,000")
    row(f"index on disk after {n:,} clicks (events {int(click_bytes) / n:.0f} B/click)",
        [f"{v['index_bytes'] / n:.0f} B/click" for v in vals])
    row("matcher RSS, started → indexed (MiB)", [f"{v['rss0'] / 1024:.0f} → {v['rss1'] / 1024:.0f}" for v in vals])
    row("partitions rebuilt on first start / after restart", [v["rebuilds"] for v in vals])
    row(f"conversions matched per second ({m:,}, pre-filled topic)", [f"{m / v['match_wall']:,.0f}" for v in vals])
    row("conversions matched per CPU-second", [f"{m / max(v['match_cpu'], 1e-9):,.0f}" for v in vals])
    row("attributions matched", [f"{v['matched']:,.0f}" for v in vals])
    row(f"state kept per conversion (redb's table stats: repeats and reversals; events {int(conversion_bytes) / m:.0f} B each)",
        [f"{v['remembered_bytes'] / v['remembered']:.0f} B" if v["remembered"] else "not measured" for v in vals])
    row("state file growth over step 2 (redb grows in regions)",
        [f"{(v['state_bytes'] - v['index_bytes']) / 1e6:.1f} MB" for v in vals])
    f.write(f"\nLast binary, live: {live} conversions posted through the intake in {secs:.0f} s = {float(live) / secs:.0f}/s "
            f"(target 500/s); receipt → attribution delay p50 / p99 **{quantile(0.5) * 1000:.0f} / "
            f"{quantile(0.99) * 1000:.0f} ms** ({int(total)} observations).\n\n")
    f.write("The delay starts at the conversion's `received_at` (the edge's receipt), so it includes the intake's\n"
            "wait for the spool's fsync before the 202, then shipping, the matcher's batch and its commit.\n")
print(open(f"{out}/report.md").read())
PY
