#!/usr/bin/env bash
# `refedge deliver`'s figures, on this machine, against a local Tansu broker
# and an nginx endpoint that answers 204 at once (broker, edge, matcher,
# deliverer and nginx share the cores):
#   1. deliveries per second from a pre-filled attributions topic to one
#      endpoint, and the deliverer's CPU per delivery;
#   2. the same with a second endpoint that is dead (nothing listens): the
#      live one's rate against step 1's (target ≥ 0.9×);
#   3. the delay from an attribution's matched_at to its acknowledged
#      delivery (p50/p99 from refedge_deliver_delay_seconds) at about 500
#      conversions/s posted through the intake and joined by the matcher.
# Attributions come the way they do in production: referral-code
# conversions through the intake, joined by `refedge match`.
# Usage: loadtest/deliver.sh [ATTRIBUTIONS] [PARTITIONS]
# Writes loadtest/results/<date>-<host>-deliver/{report.md,raw/*}.
set -euo pipefail
cd "$(dirname "$0")/.."
M=${1:-50000}
PARTS=${2:-2}
. loadtest/lib.sh
for tool in nginx wrk curl python3; do need $tool; done
need_tansu
build_refedge
results_dir deliver
work_dir

TOKEN=loadtest-conversions-token-0123
SECRET=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
BROKER=127.0.0.1:19592
PUBLIC=127.0.0.1:18182
ADMIN=127.0.0.1:19192
MATCH=127.0.0.1:19193
DELIVER=127.0.0.1:19194
HOOK=127.0.0.1:18183
DEAD=127.0.0.1:9
printf '{"code":"CPN001","target":"https://brand.example/c","advocate_id":"adv-1"}\n' >"$WORK/links.jsonl"

# sum of the series at $1 (admin address) named $2, or starting with $2 when
# it holds a `{` (some of the labels)
metric() {
  curl -s "http://$1/metrics" |
    awk -v m="$2" '$1 == m || index($1, m "{") == 1 || (index(m, "{") && index($1, m) == 1) {s += $2} END {print s + 0}'
}
wait_metric() { # address, name, value
  until [ "$(metric "$1" "$2" | cut -d. -f1)" -ge "$3" ] 2>/dev/null; do sleep 0.05; done
}
now() { date +%s.%N; }

{ nginx_head 4096; cat <<CONF
  server { listen $HOOK; location / { return 204; } }
}
CONF
} >"$WORK/nginx.conf"
nginx -c "$WORK/nginx.conf"

tansu broker --listener-url tcp://$BROKER --advertised-listener-url tcp://$BROKER \
  --storage-engine memory://tansu/ >"$WORK/tansu.log" 2>&1 &
until (exec 3<>/dev/tcp/${BROKER%:*}/${BROKER#*:}) 2>/dev/null; do sleep 0.05; done
for t in refedge.clicks refedge.conversions refedge.attributions; do
  tansu topic create $t --partitions "$PARTS" --broker tcp://$BROKER >/dev/null
done
tansu topic create refedge.deliveries.dead --partitions 1 --broker tcp://$BROKER >/dev/null

REFEDGE_SERVER_LISTEN=$PUBLIC REFEDGE_ADMIN_LISTEN=$ADMIN REFEDGE_LINKS_FILE="$WORK/links.jsonl" \
REFEDGE_EVENTS_SPOOL_DIR="$WORK/spool" REFEDGE_EVENTS_SINK=kafka REFEDGE_KAFKA_BROKERS=$BROKER \
REFEDGE_CONVERSIONS_TOKENS=$TOKEN REFEDGE_LOG_LEVEL=warn "$BIN" serve --config /dev/null 2>>"$WORK/edge.log" &
until curl -fs "http://$ADMIN/readyz" >/dev/null 2>&1; do sleep 0.05; done
REFEDGE_KAFKA_BROKERS=$BROKER REFEDGE_MATCH_STATE_DIR="$WORK/match" REFEDGE_MATCH_ADMIN_LISTEN=$MATCH \
REFEDGE_LINKS_FILE="$WORK/links.jsonl" REFEDGE_LOG_LEVEL=warn "$BIN" match --config /dev/null 2>>"$WORK/matcher.log" &
until curl -fs "http://$MATCH/readyz" >/dev/null 2>&1; do sleep 0.05; done

echo "== pre-filling the attributions topic: $M code conversions through the intake and the matcher"
python3 - "$WORK/batches" "$M" <<'PY'
import os, sys
out, m = sys.argv[1], int(sys.argv[2])
os.makedirs(out, exist_ok=True)
for b in range(0, m, 1000):
    with open(f"{out}/{b // 1000:05d}.ndjson", "w") as f:
        for i in range(b, min(b + 1000, m)):
            f.write('{"event_id":"bench-%d","name":"deal_won","referral_code":"CPN001","value_minor":5000,"currency":"EUR"}\n' % i)
PY
for f in "$WORK"/batches/*.ndjson; do
  curl -fs -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/x-ndjson' \
    --data-binary @"$f" "http://$PUBLIC/v1/conversions" >/dev/null
done
wait_metric $MATCH refedge_match_attributions_total "$M"

endpoint() { # name url
  printf '[[deliver.endpoints]]\nname = "%s"\nurl = "%s"\nsecret = "%s"\n' "$1" "$2" "$SECRET"
}
deliverer() { # group, config file: starts it, sets DELIVERER
  REFEDGE_KAFKA_BROKERS=$BROKER REFEDGE_DELIVER_ADMIN_LISTEN=$DELIVER REFEDGE_DELIVER_GROUP_ID=$1 \
  REFEDGE_LOG_LEVEL=info "$BIN" deliver --config "$2" 2>>"$OUT/raw/deliverer.log" &
  DELIVERER=$!
  until curl -fs "http://$DELIVER/livez" >/dev/null 2>&1; do sleep 0.01; done
}
run_phase() { # label group config: wall seconds and CPU ticks for M deliveries to "live"
  deliverer "$2" "$3"
  local t0 w0 w1 t1
  t0=$(cpu_ticks $DELIVERER)
  wait_metric $DELIVER 'refedge_deliver_deliveries_total{endpoint="live"' 1
  w0=$(now)
  wait_metric $DELIVER 'refedge_deliver_deliveries_total{endpoint="live"' "$M"
  w1=$(now)
  t1=$(cpu_ticks $DELIVERER)
  curl -s "http://$DELIVER/metrics" >"$OUT/raw/$1-metrics.txt"
  kill -TERM $DELIVERER; wait $DELIVERER 2>/dev/null || true
  echo "$1 $w0 $w1 $t0 $t1" >>"$OUT/raw/phases.txt"
}

endpoint live "http://$HOOK/hooks" >"$WORK/alone.toml"
{ endpoint live "http://$HOOK/hooks"; endpoint dead "http://$DEAD/hooks"; } >"$WORK/dead.toml"
: >"$OUT/raw/phases.txt"
for round in 1 2; do
  echo "== round $round: one endpoint"
  run_phase "alone-$round" "bench-alone-$round" "$WORK/alone.toml"
  echo "== round $round: with a dead endpoint beside it"
  run_phase "dead-$round" "bench-dead-$round" "$WORK/dead.toml"
done

echo "== delay at ~500 conversions/s"
deliverer bench-live "$WORK/alone.toml"
wait_metric $DELIVER 'refedge_deliver_deliveries_total{endpoint="live"' "$M"
conversions_lua "$WORK/live.lua" 10 "',\"referral_code\":\"CPN001\"'"
curl -s "http://$DELIVER/metrics" >"$OUT/raw/live-before.txt"
# Ten connections of ten conversions, each answered at the spool's next
# fsync (events.fsync_interval_ms, 200 ms): about 500 conversions a second.
wrk -t1 -c10 -d20s -s "$WORK/live.lua" "http://$PUBLIC/v1/conversions" >"$OUT/raw/live-wrk.txt"
LIVE=$(( $(awk '/requests in/ {print $1}' "$OUT/raw/live-wrk.txt") * 10 ))
wait_metric $DELIVER 'refedge_deliver_deliveries_total{endpoint="live"' $(( M + LIVE ))
curl -s "http://$DELIVER/metrics" >"$OUT/raw/live-after.txt"
kill -TERM $DELIVERER; wait $DELIVERER 2>/dev/null || true

python3 - "$OUT" "$M" "$PARTS" "$HZ" "$LIVE" <<'PY'
import os, re, sys
out, m, parts, hz, live = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
phases = {}
for line in open(f"{out}/raw/phases.txt"):
    label, w0, w1, t0, t1 = line.split()
    phases[label] = (m / (float(w1) - float(w0)), (int(t1) - int(t0)) / hz / m * 1e6)
def buckets(path):
    b = []
    for line in open(path):
        g = re.match(r'refedge_deliver_delay_seconds_bucket\{le="([^"]+)"\} (\S+)', line)
        if g:
            b.append((float("inf") if g.group(1) == "+Inf" else float(g.group(1)), float(g.group(2))))
    return b
before, after = buckets(f"{out}/raw/live-before.txt"), buckets(f"{out}/raw/live-after.txt")
delta = [(le, c - c0) for (le, c), (_, c0) in zip(after, before)]
total = delta[-1][1] if delta else 0
def quantile(q):
    rank, lo, below = q * total, 0.0, 0.0
    for le, count in delta:
        if count >= rank:
            return lo + (le - lo) * (rank - below) / max(count - below, 1e-9)
        lo, below = le, count
    return float("nan")
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
with open(f"{out}/report.md", "w") as f:
    f.write("# refedge deliver\n\n")
    f.write(f"Command: `bash loadtest/deliver.sh {m} {parts}`; release build; {os.cpu_count()} cores, {cpu}; "
            "Tansu (in-memory), the edge, the matcher, the deliverer and nginx (`return 204`) share them.\n\n")
    f.write("| round | deliveries/s, one endpoint | CPU µs a delivery | deliveries/s to it with a dead endpoint beside | ratio |\n")
    f.write("| --- | ---: | ---: | ---: | ---: |\n")
    for r in ("1", "2"):
        (a, ca), (d, cd) = phases[f"alone-{r}"], phases[f"dead-{r}"]
        f.write(f"| {r} | {a:,.0f} | {ca:.1f} | {d:,.0f} ({cd:.1f} µs) | {d / a:.2f} |\n")
    f.write(f"\nDelay from `matched_at` to the endpoint's 2xx at {live / 20:.0f} conversions/s ({int(total)} deliveries): "
            f"p50 **{quantile(0.5) * 1000:.0f} ms**, p99 **{quantile(0.99) * 1000:.0f} ms** "
            "(Prometheus-style interpolation inside the delay histogram's buckets).\n")
print(open(f"{out}/report.md").read())
PY
