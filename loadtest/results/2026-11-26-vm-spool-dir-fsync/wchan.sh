#!/bin/bash
# $1 binary, $2 label: 3 x 10 s saturation; where the spool writer thread waits (wchan, every 20 ms)
rm -rf spool; REFEDGE_SERVER_LISTEN=127.0.0.1:18080 REFEDGE_ADMIN_LISTEN=127.0.0.1:19090 REFEDGE_LINKS_FILE=links100k.jsonl REFEDGE_EVENTS_SPOOL_DIR=spool REFEDGE_ATTRIBUTION_SECRET=loadtest-secret-0123456789 REFEDGE_LOG_LEVEL=warn $1 serve --config /dev/null 2>edge.log &
P=$!; until curl -fs http://127.0.0.1:19090/readyz >/dev/null 2>&1; do sleep 0.05; done
S=$(for t in /proc/$P/task/*; do [ "$(cat $t/comm)" = refedge-spool ] && basename $t; done)
( while kill -0 $P 2>/dev/null; do cat /proc/$P/task/$S/wchan 2>/dev/null; echo; sleep 0.02; done ) > wchan-$2.txt &
W=$!
for i in 1 2 3; do wrk -t2 -c64 -d10s -s random.lua http://127.0.0.1:18080 | grep "Requests/sec" | tr '\n' ' '; curl -s http://127.0.0.1:19090/metrics | grep -E "events_total\{result=\"dropped_queue_full"; done
kill $W; kill -INT $P; wait $P
echo "$2: writer samples $(wc -l < wchan-$2.txt), waiting on a sync: $(grep -cE 'sync|jbd2|submit_bio_wait|wait_on' wchan-$2.txt)"
sort wchan-$2.txt | uniq -c | sort -rn | head -8
rm -rf spool
