#!/usr/bin/env bash
# HTTPS figures for refedge and nginx with the same ECDSA P-256 certificate,
# side by side in one run on this machine, alternating rounds (nginx, refedge,
# nginx, refedge, ...):
#   full   new connections with a full handshake, one request each
#          (2 x `openssl s_time -new`, TLS 1.3);
#   resume new connections resuming a session, one request each
#          (h2load --h1 with `Connection: close`, SNI go.bench.example);
#   h2     keep-alive HTTP/2 redirects (h2load, 32 connections x 10 streams);
#   h1     keep-alive HTTP/1.1 redirects (h2load --h1, 32 connections).
# For each: requests (= connections for full/resume) per second and the
# server's own CPU microseconds per request, from /proc/PID/stat (nginx: its
# two workers; refedge: the process). The clients run on the same 2 cores, so
# the raw rates are shared with them; CPU per request is the server's cost.
# Then testssl.sh against refedge; its findings are summarised.
# Usage: loadtest/tls.sh [ROUNDS] [SECONDS]
# Env: BEFORE=path to another refedge binary: measured in the same rounds
# (nginx, before, refedge), its figures in a table of their own (an A/B of a
# change in one run); TESTSSL=0 skips testssl.sh.
# Writes loadtest/results/<date>-<host>-tls/{report.md,raw/*}.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
SECS=${2:-5}
. loadtest/lib.sh
need nginx nginx
need h2load nghttp2-client
need openssl openssl
need testssl testssl.sh
need curl
need bc
build_refedge
results_dir tls
work_dir

# A private CA and a leaf shaped like a public CA's (a year, a CRL address),
# so that testssl's findings are about the server, not a self-signed test
# certificate.
mkdir -p "$WORK/certs" "$WORK/ca"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 730 \
  -keyout "$WORK/ca/ca.key" -out "$WORK/ca/ca.crt" -subj "/CN=refedge loadtest CA" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -keyout "$WORK/certs/bench.key" -out "$WORK/ca/bench.csr" -subj /CN=go.bench.example 2>/dev/null
printf '%s\n' "subjectAltName=DNS:go.bench.example" "basicConstraints=critical,CA:FALSE" \
  "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" \
  "crlDistributionPoints=URI:http://crl.bench.example/ca.crl" >"$WORK/ca/leaf.ext"
openssl x509 -req -in "$WORK/ca/bench.csr" -CA "$WORK/ca/ca.crt" -CAkey "$WORK/ca/ca.key" \
  -CAcreateserial -days 365 -extfile "$WORK/ca/leaf.ext" -out "$WORK/certs/bench.crt" 2>/dev/null
printf '{"code":"x","target":"https://brand.example/landing?utm_source=ref","advocate_id":"adv-1"}\n' >"$WORK/links.jsonl"

NGINX_PORT=18443
EDGE_PORT=18444
ADMIN=127.0.0.1:19090
{ nginx_head 8192; cat <<EOF
  ssl_protocols TLSv1.2 TLSv1.3;
  ssl_session_cache shared:SSL:10m;
  ssl_session_tickets on;
  server {
    listen 127.0.0.1:$NGINX_PORT ssl http2 reuseport;
    server_name go.bench.example;
    ssl_certificate $WORK/certs/bench.crt;
    ssl_certificate_key $WORK/certs/bench.key;
    location / { return 302 https://brand.example/landing?utm_source=ref; }
  }
}
EOF
} >"$WORK/nginx.conf"

PIDS=""
nginx_up() {
  nginx -c "$WORK/nginx.conf" -p "$WORK"
  until (exec 3<>/dev/tcp/127.0.0.1/$NGINX_PORT) 2>/dev/null; do sleep 0.05; done
  PIDS=$(pgrep -P "$(cat "$WORK/nginx.pid")" | tr '\n' ' ')
  PORT=$NGINX_PORT
}
nginx_down() { kill -QUIT "$(cat "$WORK/nginx.pid")"; while [ -f "$WORK/nginx.pid" ]; do sleep 0.05; done; }
edge_up() { # $1: the binary (default $BIN)
  rm -rf "$WORK/spool"
  REFEDGE_SERVER_LISTEN=127.0.0.1:18080 REFEDGE_ADMIN_LISTEN=$ADMIN REFEDGE_LINKS_FILE="$WORK/links.jsonl" \
  REFEDGE_EVENTS_SPOOL_DIR="$WORK/spool" REFEDGE_ATTRIBUTION_SECRET=loadtest-secret-0123456789 \
  REFEDGE_TLS_LISTEN=127.0.0.1:$EDGE_PORT REFEDGE_TLS_CERT_DIR="$WORK/certs" REFEDGE_TLS_DEFAULT_CERT=bench \
  REFEDGE_TLS_HSTS_MAX_AGE_SECS=31536000 REFEDGE_LOG_LEVEL=warn \
    "${1:-$BIN}" serve --config /dev/null 2>>"$WORK/edge.log" &
  EDGE_PID=$!
  until curl -fs "http://$ADMIN/readyz" >/dev/null 2>&1; do sleep 0.05; done
  PIDS=$EDGE_PID
  PORT=$EDGE_PORT
}
edge_down() { kill -TERM "$EDGE_PID"; wait "$EDGE_PID" || true; }
ticks() { cpu_ticks $PIDS; }
now() { date +%s.%N; }

# Runs one measure against $PORT; appends "server measure rate cpu_us" to rows.
measure() { # $1 server, $2 measure, $3 round
  local raw="$OUT/raw/$1-$2-$3.txt" t0 t1 c0 c1 n rate
  c0=$(ticks); t0=$(now)
  case $2 in
    full)
      local clients=""
      for i in 1 2; do
        openssl s_time -connect 127.0.0.1:$PORT -new -tls1_3 -time "$SECS" -www /x >"$raw.$i" 2>&1 &
        clients="$clients $!"
      done
      wait $clients
      n=$(awk '/connections in .* real seconds/ {s += $1} END {print s}' "$raw".1 "$raw".2)
      cat "$raw".1 "$raw".2 >"$raw"; rm -f "$raw".1 "$raw".2 ;;
    resume)
      # Request counts, not -D: h2load 1.52's timed runs over HTTP/1.1 never
      # end. The counts take about SECS seconds here.
      h2load -n $((SECS * 1500)) -c 32 --h1 -H 'Connection: close' --connect-to=127.0.0.1:$PORT https://go.bench.example/x >"$raw" 2>&1
      n=$(awk '/^requests:/ {print $8}' "$raw") ;;
    h2)
      h2load -n $((SECS * 60000)) -c 32 -m 10 --connect-to=127.0.0.1:$PORT https://go.bench.example/x >"$raw" 2>&1
      n=$(awk '/^requests:/ {print $8}' "$raw") ;;
    h1)
      h2load -n $((SECS * 40000)) -c 32 --h1 --connect-to=127.0.0.1:$PORT https://go.bench.example/x >"$raw" 2>&1
      n=$(awk '/^requests:/ {print $8}' "$raw") ;;
  esac
  t1=$(now); c1=$(ticks)
  rate=$(echo "$n / ($t1 - $t0)" | bc -l)
  echo "$1 $2 $(printf %.0f "$rate") $(echo "($c1 - $c0) * 1000000 / $HZ / $n" | bc -l | xargs printf %.1f)" >>"$WORK/rows"
}

MEASURES="full resume h2 h1"
for r in $(seq 1 "$ROUNDS"); do
  for server in nginx ${BEFORE:+before} refedge; do
    case $server in nginx) nginx_up ;; before) edge_up "$BEFORE" ;; *) edge_up ;; esac
    for m in $MEASURES; do measure $server $m "$r"; done
    if [ $server = nginx ]; then nginx_down; else edge_down; fi
    echo "round $r $server: $(grep "^$server " "$WORK/rows" | tail -4 | awk '{printf "%s %s/s %sus  ", $2, $3, $4}')"
  done
done
cp "$WORK/rows" "$OUT/raw/rows.txt"
# The median of a column (3 = req/s, 4 = CPU µs/req) for one server and measure.
med() { awk -v s="$1" -v m="$2" -v c="$3" '$1==s && $2==m {print $c}' "$WORK/rows" | median; }

{
  echo "# HTTPS: refedge vs nginx, same certificate"
  echo
  echo "Command: \`bash loadtest/tls.sh $ROUNDS $SECS\` ($(date -u +%Y-%m-%dT%H:%MZ)); $ROUNDS alternating rounds of ${SECS}s per measure."
  echo "Machine: $(nproc) cores, $(awk '/model name/ {$1=$2=$3=""; print; exit}' /proc/cpuinfo | xargs), $(uname -r);"
  echo "nginx $(nginx -v 2>&1 | sed 's/.*\///') with $(openssl version | cut -d' ' -f1-2), 2 workers, session cache + tickets;"
  echo "refedge $("$BIN" --version | cut -d' ' -f2) (rustls, aws-lc-rs), 2 worker threads, spool sink, cookie + event per request, HSTS on."
  echo "Certificate: ECDSA P-256. Clients share the 2 cores with the server."
  echo
  echo "| measure | nginx req/s | refedge req/s | refedge ÷ nginx | nginx CPU µs/req | refedge CPU µs/req | refedge ÷ nginx CPU |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
  for m in $MEASURES; do
    nr=$(med nginx $m 3) er=$(med refedge $m 3) nc=$(med nginx $m 4) ec=$(med refedge $m 4)
    printf '| %s | %.0f | %.0f | %.2f | %.1f | %.1f | %.2f |\n' $m "$nr" "$er" "$(echo "$er / $nr" | bc -l)" "$nc" "$ec" "$(echo "$ec / $nc" | bc -l)"
  done
  echo
  echo "full = new TLS 1.3 connection with a full handshake and one request (openssl s_time -new, 2 clients);"
  echo "resume = new connection resuming a session, one request (h2load --h1, Connection: close, 32 clients);"
  echo "h2 / h1 = keep-alive HTTPS redirects (h2load, 32 connections; h2 with 10 streams each)."
  nf=$(med nginx full 4) ef=$(med refedge full 4)
  echo
  echo "The clients' own handshake work takes most of the 2 cores, so the raw full-handshake rates above are"
  echo "the clients' limit for both servers. What each server can take is its handshake capacity per CPU-second"
  printf '(1e6 ÷ CPU µs per new connection): nginx %.0f/s, refedge %.0f/s, **refedge ÷ nginx = %.2f**.\n' \
    "$(echo "1000000 / $nf" | bc -l)" "$(echo "1000000 / $ef" | bc -l)" "$(echo "$nf / $ef" | bc -l)"
  if [ -n "${BEFORE:-}" ]; then
    echo
    echo "### The same rounds: refedge before and after the change under test"
    echo
    echo "Before: \`$BEFORE\`; after: \`$BIN\`."
    echo
    echo "| measure | before req/s | after req/s | after ÷ before | before CPU µs/req | after CPU µs/req |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: |"
    for m in $MEASURES; do
      br=$(med before $m 3) ar=$(med refedge $m 3) bc_=$(med before $m 4) ac=$(med refedge $m 4)
      printf '| %s | %.0f | %.0f | %.2f | %.1f | %.1f |\n' $m "$br" "$ar" "$(echo "$ar / $br" | bc -l)" "$bc_" "$ac"
    done
  fi
} >"$OUT/report.md"

[ "${TESTSSL:-1}" = 0 ] && { cat "$OUT/report.md"; exit 0; }
echo "== testssl.sh against refedge"
edge_up
testssl --quiet --color 0 --warnings off --ip 127.0.0.1 --add-ca "$WORK/ca/ca.crt" --jsonfile "$OUT/raw/testssl.json" \
  "https://go.bench.example:$EDGE_PORT" >"$OUT/raw/testssl.txt" 2>&1 || true
edge_down
{
  echo
  echo "## testssl.sh against refedge"
  echo
  echo "\`testssl --ip 127.0.0.1 --add-ca ca.crt https://go.bench.example:$EDGE_PORT\` (testssl.sh $(dpkg-query -W -f='${Version}' testssl.sh)), certificate from a private CA; findings by severity:"
  echo
  echo "| severity | findings |"
  echo "| --- | ---: |"
  for s in CRITICAL HIGH MEDIUM LOW; do
    printf '| %s | %s |\n' $s "$(grep -c "\"severity\"[[:space:]]*:[[:space:]]*\"$s\"" "$OUT/raw/testssl.json" || true)"
  done
  echo
  echo "Findings rated MEDIUM or above:"
  echo
  python3 - "$OUT/raw/testssl.json" <<'PY'
import json, sys
rank = {"CRITICAL": 0, "HIGH": 1, "MEDIUM": 2}
rows = [f for f in json.load(open(sys.argv[1])) if f.get("severity") in rank]
for f in sorted(rows, key=lambda f: rank[f["severity"]]):
    print(f"- {f['severity']} `{f['id']}`: {f['finding']}")
if not rows:
    print("- none")
PY
} >>"$OUT/report.md"
cat "$OUT/report.md"
