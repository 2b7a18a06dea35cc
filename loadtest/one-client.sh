#!/usr/bin/env bash
# Where refedge's CPU goes per request when one client drives the load, next
# to nginx (run.sh's baseline) and bare hyper, in two parts:
#  1. Threads: in alternating rounds, each server under wrk -c64 from one
#     client thread (-t1) and from two (-t2); per request, for each of the
#     server's threads (grouped by name): user and system CPU, time spent
#     runnable but waiting for a CPU (schedstat), voluntary and involuntary
#     context switches; and the machine's idle share, wrk's own CPU per
#     request, req/s.
#  2. Instructions: each server under callgrind (user space, every thread,
#     counted only while wrk -t1 -c16 drives it), instructions per request,
#     and for refedge the main parts of it. callgrind counts the same whatever
#     else the machine does, so this part is steady where req/s are not.
#     (valgrind's CPU has no SHA extensions: the cookie's HMAC runs sha2's
#     portable code there, so "of which SHA-256" is reported apart.)
# Usage: loadtest/one-client.sh
# Env: LINKS (100000), ROUNDS (3), SECS (8), CG_SECS (10; 0 skips part 2),
#   RF_BIN, BARE_BIN, OUT (result directory).
# Writes loadtest/results/<date>-<host>-one-client/{report.md,raw/*}.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
LINKS=${LINKS:-100000} ROUNDS=${ROUNDS:-3} SECS=${SECS:-8} CG_SECS=${CG_SECS:-10}
. loadtest/lib.sh
for tool in nginx wrk curl valgrind; do need $tool; done
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
build_refedge
if [ -z "${BARE_BIN:-}" ]; then
  (cd loadtest/bare-hyper && CARGO_TARGET_DIR=$TARGET cargo build --release --locked --quiet)
  BARE_BIN=$TARGET/release/bare-hyper
fi
results_dir one-client
work_dir
harness_links "$LINKS"
export CODES="$WORK/codes.txt"
PORT=18090 ADMIN=127.0.0.1:19099
nginx_redirects $PORT
# One nginx process for callgrind (no master, no fork).
sed 's/^worker_processes 2;/daemon off; master_process off; worker_processes 1;/' "$WORK/nginx.conf" >"$WORK/nginx-one.conf"

wait_port() { until (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null; do sleep 0.05; done; }
# start SERVER [WRAPPER...]: starts it (under WRAPPER, e.g. valgrind); sets PIDS.
start() {
  local s=$1; shift
  case $s in
    nginx)
      if [ $# -gt 0 ]; then "$@" nginx -c "$WORK/nginx-one.conf" -p "$WORK" & PIDS=$!
      else nginx -c "$WORK/nginx.conf" -p "$WORK"; wait_port $PORT
        PIDS=$(awk -v p="$(cat "$WORK/nginx.pid")" '$4 == p {print $1}' /proc/[0-9]*/stat | tr '\n' ' '); fi ;;
    bare) "$@" "$BARE_BIN" 127.0.0.1:$PORT & PIDS=$! ;;
    refedge)
      rm -rf "$WORK/spool"
      REFEDGE_SERVER_LISTEN=127.0.0.1:$PORT REFEDGE_ADMIN_LISTEN=$ADMIN REFEDGE_LINKS_FILE="$WORK/links.jsonl" \
      REFEDGE_EVENTS_SPOOL_DIR="$WORK/spool" REFEDGE_EVENTS_SINK=spool \
      REFEDGE_ATTRIBUTION_SECRET=loadtest-secret-0123456789 REFEDGE_LOG_LEVEL=warn \
        "$@" "$RF_BIN" serve --config /dev/null 2>>"$WORK/edge.log" & PIDS=$! ;;
  esac
  wait_port $PORT
}
stop() {
  if [ "$1" = nginx ] && [ -f "$WORK/nginx.pid" ] && [ -z "${2:-}" ]; then
    kill -QUIT "$(cat "$WORK/nginx.pid")"; while [ -f "$WORK/nginx.pid" ]; do sleep 0.05; done
  else
    kill $PIDS 2>/dev/null || true; wait $PIDS 2>/dev/null || true
  fi
  while (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null; do sleep 0.05; done
}
# One line per thread: name (digits dropped), user and system ticks, run and
# wait ns, voluntary and involuntary switches.
threads() {
  local p t
  for p in $PIDS; do
    for t in /proc/$p/task/*; do
      awk -v name="$(tr -d '0-9 ' <"$t/comm")" -v st="$(sed 's/.*) //' "$t/stat")" \
        -v sched="$(cat "$t/schedstat")" '
        /^voluntary_ctxt_switches/ {v = $2} /^nonvoluntary_ctxt_switches/ {i = $2}
        END {split(st, s, " "); split(sched, c, " "); print name, s[12], s[13], c[1], c[2], v, i}' "$t/status"
    done
  done
}
busy_idle() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8, $5}' /proc/stat; }

# Part 1.
echo "round client server thread requests user_ticks sys_ticks run_ns wait_ns vol invol" >"$OUT/raw/threads.txt"
echo "round client server rps requests idle_pct wrk_ticks" >"$OUT/raw/runs.txt"
for r in $(seq 1 "$ROUNDS"); do
  for s in nginx bare refedge; do
    start $s
    for t in 1 2; do
      wrk -t$t -c64 -d1s -s "$WORK/random.lua" "http://127.0.0.1:$PORT" >/dev/null
      threads >"$WORK/before"; read -r b0 i0 < <(busy_idle)
      wrk -t$t -c64 -d${SECS}s -s "$WORK/random.lua" "http://127.0.0.1:$PORT" >"$WORK/wrk.txt" &
      W=$!
      sleep 0.2; w0=$(cpu_ticks $W); sleep $((SECS - 1)); w1=$(cpu_ticks $W)
      wait $W
      threads >"$WORK/after"; read -r b1 i1 < <(busy_idle)
      n=$(awk '/requests in/ {print $1}' "$WORK/wrk.txt")
      rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk.txt")
      # wrk's CPU was read over SECS - 0.8 s of its run: scaled to its requests.
      echo "$r $t $s $rps $n $(awk -v b=$((b1 - b0)) -v i=$((i1 - i0)) 'BEGIN {printf "%.1f", 100 * i / (b + i)}') \
$(awk -v w=$((w1 - w0)) -v s="$SECS" 'BEGIN {printf "%.1f", w * s / (s - 0.8)}')" >>"$OUT/raw/runs.txt"
      paste -d' ' "$WORK/before" "$WORK/after" | awk -v r=$r -v t=$t -v s=$s -v n=$n '
        {u[$1] += $9 - $2; y[$1] += $10 - $3; run[$1] += $11 - $4; w[$1] += $12 - $5; v[$1] += $13 - $6; i[$1] += $14 - $7}
        END {for (k in u) print r, t, s, k, n, u[k], y[k], run[k], w[k], v[k], i[k]}' >>"$OUT/raw/threads.txt"
      tail -1 "$OUT/raw/runs.txt"
    done
    stop $s
  done
done

# Part 2.
echo "server requests instructions" >"$OUT/raw/instructions.txt"
if [ "$CG_SECS" != 0 ]; then
  for s in nginx bare refedge; do
    start $s valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$OUT/raw/callgrind-$s.out"
    sleep 3
    callgrind_control -i on "$PIDS" >/dev/null
    wrk -t1 -c16 -d${CG_SECS}s -s "$WORK/random.lua" "http://127.0.0.1:$PORT" >"$WORK/wrk.txt"
    callgrind_control -i off "$PIDS" >/dev/null
    callgrind_control -d "$PIDS" >/dev/null
    stop $s valgrind
    out=$(ls -S "$OUT/raw/callgrind-$s.out"* | head -1)
    echo "$s $(awk '/requests in/ {print $1}' "$WORK/wrk.txt") $(awk '/^totals:/ {print $2}' "$out")" >>"$OUT/raw/instructions.txt"
    callgrind_annotate --inclusive=yes "$out" 2>/dev/null | awk 'NR <= 400' >"$OUT/raw/callgrind-$s.txt"
    rm -f "$OUT/raw/callgrind-$s.out"*
  done
fi

python3 - "$OUT" "$LINKS" "$ROUNDS" "$SECS" "$CG_SECS" <<'PY'
import collections, os, re, statistics, sys
out, links, rounds, secs, cg_secs = sys.argv[1:]
med = statistics.median
runs = [l.split() for l in open(f"{out}/raw/runs.txt").read().splitlines()[1:]]
threads = [l.split() for l in open(f"{out}/raw/threads.txt").read().splitlines()[1:]]
hz = os.sysconf("SC_CLK_TCK")
servers = ["nginx", "bare", "refedge"]
names = {"nginx": "nginx (2 workers)", "bare": "bare hyper", "refedge": "refedge, spool sink"}
cpu = open("/proc/cpuinfo").read()
model = re.search(r"model name\s*:\s*(.*)", cpu).group(1)
f = open(f"{out}/report.md", "w")
f.write("# One client: where the CPU per request goes\n\n")
f.write(f"Command: `bash loadtest/one-client.sh`; {links} links, {rounds} alternating round(s) of {secs} s "
        f"per server and client, wrk -c64 with random codes. Machine: {os.cpu_count()} cores, {model}; "
        "wrk and the servers share them.\n\n## Per request, medians over the rounds\n\n")
f.write("| client | server | req/s | server CPU µs | user µs | system µs | waiting for a CPU µs "
        "| voluntary switches | idle % | wrk's CPU µs |\n| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
def per_req(rows, col, scale):
    return med(sum(float(x[col]) for x in rows if x[0] == r) * scale / float(
        next(x[4] for x in rows if x[0] == r)) for r in sorted({x[0] for x in rows}))
for t in ("1", "2"):
    for s in servers:
        rr = [x for x in runs if x[1] == t and x[2] == s]
        th = [x for x in threads if x[1] == t and x[2] == s]
        if not rr:
            continue
        user, sys_ = per_req(th, 5, 1e6 / hz), per_req(th, 6, 1e6 / hz)
        f.write(f"| wrk -t{t} | {names[s]} | {med(float(x[3]) for x in rr):.0f} | {per_req(th, 7, 1e-3):.2f} "
                f"| {user:.2f} | {sys_:.2f} | {per_req(th, 8, 1e-3):.2f} | {per_req(th, 9, 1):.3f} "
                f"| {med(float(x[5]) for x in rr):.1f} "
                f"| {med(float(x[6]) * 1e6 / hz / float(x[4]) for x in rr):.2f} |\n")
f.write("\n## refedge by thread, per request (medians)\n\n| client | thread | CPU µs | user µs | system µs "
        "| waiting for a CPU µs | voluntary switches |\n| --- | --- | ---: | ---: | ---: | ---: | ---: |\n")
for t in ("1", "2"):
    th = [x for x in threads if x[1] == t and x[2] == "refedge"]
    for name in sorted({x[3] for x in th}):
        rows = [x for x in th if x[3] == name]
        if per_req(rows, 7, 1e-3) < 0.01:  # the main thread, idle workers
            continue
        f.write(f"| wrk -t{t} | {name} | {per_req(rows, 7, 1e-3):.2f} | {per_req(rows, 5, 1e6 / hz):.2f} "
                f"| {per_req(rows, 6, 1e6 / hz):.2f} | {per_req(rows, 8, 1e-3):.2f} | {per_req(rows, 9, 1):.3f} |\n")
inst = [l.split() for l in open(f"{out}/raw/instructions.txt").read().splitlines()[1:]]
if inst:
    f.write(f"\n## Instructions per request (callgrind, user space, all threads; wrk -t1 -c16 for {cg_secs} s)\n\n"
            "| server | requests | instructions per request |\n| --- | ---: | ---: |\n")
    per = {}
    for s, n, total in inst:
        per[s] = (int(n), int(total))
        f.write(f"| {names[s].replace('2 workers', 'one process')} | {n} | {int(total) / int(n):,.0f} |\n")
    parts = [
        ("the HTTP service (routing, attribution, Location, headers, hand-off)", "Clicks as hyper::service::service::Service"),
        ("  of which the attribution cookie", "refedge::attribution::AttributionPolicy::decide"),
        ("    of which SHA-256 (portable code under valgrind)", "sha2::sha256::soft::compress ["),
        ("  of which the `Location`", "refedge::http::query::location"),
        ("  of which the `Location` header", "refedge::http::query::Location::header"),
        ("  of which the redirect's headers", "refedge::http::router::redirect"),
        ("  of which the click's text for the writer", "refedge::http::router::click_text"),
        ("  of which the host check", "refedge::http::router::request_host"),
        ("  of which the bot check", "refedge::visitor::classify"),
        ("  of which the click id", "refedge::attribution::click_id::ClickId::new"),
        ("hyper's request parsing", "hyper::proto::h1::io::Buffered<T,B>::parse ["),
        ("the spool writer (enrichment, JSON line)", "refedge::events::spool::SpoolWriter::run\n"),
        ("  of which the JSON line", "refedge::events::event::ClickEvent::write_json"),
        ("  of which the enrichment", "refedge::events::enrich::Enricher::enrich_with"),
    ]
    if "refedge" in per:
        n = per["refedge"][0]
        text = open(f"{out}/raw/callgrind-refedge.txt").read()
        f.write("\n### refedge's instructions per request, by part\n\n| part | instructions |\n| --- | ---: |\n")
        for label, pattern in parts:
            counts = [int(m.replace(",", "")) for line in text.splitlines(keepends=True)
                      if pattern.strip("\n") in line and (not pattern.endswith("\n") or line.rstrip().endswith(pattern.strip()))
                      for m in re.findall(r"^\s*([\d,]+)", line)]
            if counts:
                f.write(f"| {label.replace('  ', '&nbsp;&nbsp;')} | {max(counts) / n:,.0f} |\n")
f.write("\nRaw rows and callgrind's inclusive listings are in `raw/`.\n")
f.close()
print(open(f"{out}/report.md").read())
PY
