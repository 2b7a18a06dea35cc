# Sourced by the loadtest scripts: the tools they install when missing, the
# release build, the results and scratch directories, and CPU accounting.
export PATH="$HOME/.cargo/bin:$PATH"

# need COMMAND [DEBIAN_PACKAGE]
need() {
  command -v "$1" >/dev/null || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${2:-$1}" >/dev/null
  }
}
need_tansu() { command -v tansu >/dev/null || cargo install tansu --locked --features dynostore,libsql; }
need_matplotlib() {
  python3 -c 'import matplotlib' 2>/dev/null ||
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore matplotlib
}

# Sets BIN: $RF_BIN, or the release build (made now).
build_refedge() {
  if [ -z "${RF_BIN:-}" ]; then
    cargo build --release --locked --bin refedge
    RF_BIN=${CARGO_TARGET_DIR:-$PWD/target}/release/refedge
  fi
  BIN=$RF_BIN
}

# results_dir [SUFFIX]: sets OUT (unless given) to
# loadtest/results/<date>-<host>[-SUFFIX], or -2, -3, … after it when that is
# taken (a run never writes over an earlier one), with an empty raw/.
results_dir() {
  if [ -z "${OUT:-}" ]; then
    local base n=1
    base=loadtest/results/$(date -u +%Y-%m-%d)-$(hostname)${1:+-$1}
    OUT=$base
    while [ -e "$OUT" ]; do n=$((n + 1)); OUT=$base-$n; done
  fi
  mkdir -p "$OUT/raw"
  rm -f "$OUT"/raw/*
}

# Sets WORK to a scratch directory removed at exit, with every background
# job (and an nginx started with its pid in $WORK) stopped.
work_dir() {
  WORK=$(mktemp -d)
  trap 'kill $(jobs -p) 2>/dev/null || true; [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null; rm -rf "$WORK"' EXIT
}

# CPU clock ticks (user + system) used so far by the given processes.
cpu_ticks() {
  local t=0 p
  for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
  echo $t
}
HZ=$(getconf CLK_TCK)

# The median of the numbers on stdin.
median() { sort -n | awk '{a[NR]=$1} END {if (NR == 0) print 0; else print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

# nginx_head WORKER_CONNECTIONS: the start of an nginx.conf running from
# $WORK with 2 workers and no access log, up to the open `http {`.
nginx_head() {
  cat <<NGINX
worker_processes 2;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections $1; }
http {
  access_log off;
NGINX
}

# harness_links LINKS: the side-by-side harness's links ($WORK/links.jsonl,
# deterministic), the codes that serve every host ($WORK/codes.txt), the same
# set as an nginx map ($WORK/map.conf), and $WORK/random.lua, a wrk script
# drawing codes from $CODES (uniformly, or Zipf-distributed with
# CODE_DIST=zipf) with a phone browser's user agent and, with CLOSE=1,
# `Connection: close`.
harness_links() {
  python3 loadtest/gen_links.py "$1" 42 >"$WORK/links.jsonl" 2>/dev/null
  grep -v '"domain"' "$WORK/links.jsonl" | cut -d'"' -f4,8 --output-delimiter=' ' >"$WORK/pairs.txt"
  cut -d' ' -f1 "$WORK/pairs.txt" >"$WORK/codes.txt"
  awk '{printf "/%s \"%s\";\n", $1, $2}' "$WORK/pairs.txt" >"$WORK/map.conf"
  cat >"$WORK/random.lua" <<'LUA'
local codes = {}
for line in io.lines(os.getenv("CODES")) do codes[#codes + 1] = line end
math.randomseed(42)
wrk.headers["User-Agent"] = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 Safari/604.1"
if os.getenv("CLOSE") == "1" then wrk.headers["Connection"] = "close" end
-- Uniform: every code as likely. Zipf (s = 1, the continuous approximation
-- rank = N^u): a few codes take most clicks, as shared links do.
local zipf = os.getenv("CODE_DIST") == "zipf"
request = function()
  local i = zipf and math.floor((#codes) ^ math.random()) or math.random(#codes)
  return wrk.format("GET", "/" .. codes[i] .. "?utm_campaign=spring")
end
LUA
}

# nginx_redirects PORT: $WORK/nginx.conf, the baseline every harness
# compares with: nginx with harness_links' map and `return 302`, 2 workers,
# on 127.0.0.1:PORT.
nginx_redirects() {
  { nginx_head 16384; cat <<NGINX
  map_hash_max_size $(($(wc -l <"$WORK/map.conf") * 2 + 2));
  map_hash_bucket_size 128;
  map \$uri \$target { include $WORK/map.conf; }
  server {
    listen 127.0.0.1:$1 reuseport backlog=4096;
    location / {
      if (\$target = "") { return 404; }
      return 302 \$target;
    }
  }
}
NGINX
  } >"$WORK/nginx.conf"
}

# wrk_random LINKS [CODES]: $WORK/links.jsonl with LINKS deterministic links,
# and $WORK/random.lua, a wrk script requesting codes drawn at random from the
# first CODES of them not bound to a domain (0, the default: all), with a
# phone browser's user agent and $QUERY as the query string when set.
wrk_random() {
  python3 loadtest/gen_links.py "$1" 42 >"$WORK/links.jsonl" 2>/dev/null
  awk -F'"' -v max="${2:-0}" '!/"domain"/ && (max == 0 || n++ < max) {print $4}' "$WORK/links.jsonl" >"$WORK/codes.txt"
  cat >"$WORK/random.lua" <<LUA
local codes = {}
for line in io.lines("$WORK/codes.txt") do codes[#codes + 1] = line end
math.randomseed(7)
wrk.headers["User-Agent"] = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) Safari/604.1"
request = function() return wrk.format("GET", "/" .. codes[math.random(#codes)] .. "${QUERY:+?$QUERY}") end
LUA
}

# bucket_le FILE HISTOGRAM Q: in a /metrics text, the upper bound of the
# bucket of HISTOGRAM that holds quantile Q of its samples (Q = 1: its
# highest non-empty bucket); "-" when it has none.
bucket_le() {
  awk -v h="$2_bucket" -v q="$3" -F'[{}" ]+' '$1 == h { le[n] = $3; c[n++] = $NF }
    END { if (n == 0 || c[n - 1] == 0) { print "-"; exit }
      for (i = 0; i < n; i++) if (c[i] >= q * c[n - 1]) { print le[i]; exit } }' "$1"
}

# noise_start DIR / noise_stop: a neighbour writing and fsyncing 256 MiB
# files in DIR (the spool's file system) until stopped.
noise_start() {
  NOISE_DIR=$1
  (while :; do dd if=/dev/zero of="$NOISE_DIR/noise" bs=1M count=256 conv=fsync status=none; rm -f "$NOISE_DIR/noise"; done) &
  NOISE_PID=$!
}
noise_stop() {
  [ -n "${NOISE_PID:-}" ] || return 0
  kill "$NOISE_PID"; wait "$NOISE_PID" 2>/dev/null || true
  rm -f "$NOISE_DIR/noise"
  NOISE_PID=
}

# wait_ready ADMIN PID LOG: polls ADMIN's /readyz until 200; exits with the
# edge's log when process PID is gone first.
wait_ready() {
  until curl -fs "http://$1/readyz" >/dev/null 2>&1; do
    kill -0 "$2" 2>/dev/null || { cat "$3"; exit 1; }
    sleep 0.05
  done
}

# conversions_lua FILE LINES FIELDS [PRELUDE]: a wrk script posting LINES
# conversions a request as JSON Lines (bearer $TOKEN), each with a fresh
# event_id and the JSON fields FIELDS (a Lua expression, evaluated per line,
# giving text such as ,"click_id":"…"); PRELUDE is Lua run once first.
conversions_lua() {
  cat >"$1" <<LUA
${4:-}
local n = 0
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer $TOKEN"
wrk.headers["Content-Type"] = "application/x-ndjson"
request = function()
  local lines = {}
  for i = 1, $2 do
    n = n + 1
    lines[i] = string.format('{"event_id":"lt-%d-%d","name":"signup"%s}', math.random(1e9), n, $3)
  end
  wrk.body = table.concat(lines, "\n")
  return wrk.format()
end
LUA
}
