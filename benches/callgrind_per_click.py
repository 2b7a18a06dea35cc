"""Instructions per click of a callgrind run of the request_path bench:

    valgrind --tool=callgrind --callgrind-out-file=OUT '--toggle-collect=*Edge::handle*' \
        BENCH --bench --profile-time 2 'full_click_zipf_1m$'
    python3 benches/callgrind_per_click.py OUT

The collected instructions (everything under Edge::handle) divided by the
calls of LinkStore::resolve (one a click).
"""
import re
import sys

path = sys.argv[1]
names = {}
total = 0
calls = 0
cur_cfn = None
events = None
for line in open(path, errors='replace'):
    line = line.rstrip('\n')
    if line.startswith('events:'):
        events = line.split()[1:]
    if line.startswith('summary:') or line.startswith('totals:'):
        total = int(line.split()[1])
    m = re.match(r'cfn=\((\d+)\)(?: (.*))?', line)
    if m:
        i, n = m.group(1), m.group(2)
        if n: names[i] = n
        cur_cfn = names.get(i, '')
        continue
    m = re.match(r'fn=\((\d+)\)(?: (.*))?', line)
    if m and m.group(2):
        names[m.group(1)] = m.group(2)
    if line.startswith('calls=') and cur_cfn is not None:
        if 'LinkStore::resolve' in cur_cfn:
            calls += int(line[6:].split()[0])
        cur_cfn = None
print(f"Ir={total} resolve_calls={calls} per_click={total/calls if calls else float('nan'):.0f}")
