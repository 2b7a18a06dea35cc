#!/usr/bin/env python3
"""Writes report.md and latency.png for a loadtest/run.sh run.

Usage: report.py OUT ROWS LINKS ROUNDS SECS LAT_SECS ARGS
"""
import json
import os
import platform
import statistics
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

out, rows_path, links, rounds, secs, lat_secs, args = sys.argv[1:8]
SERVERS = ["nginx", "bare", "spool", "kafka", "kafka_down"]
NAMES = {
    "nginx": "nginx map + return 302",
    "bare": "bare hyper 302",
    "spool": "refedge, spool sink",
    "kafka": "refedge, Kafka sink",
    "kafka_down": "refedge, Kafka sink, broker down",
}
PCTS = [("p50", "p50"), ("p90", "p90"), ("p99", "p99"), ("p99.9", "p99.9")]

rows = [line.split() for line in open(rows_path).read().splitlines()[1:]]
ran = {r[0] for r in rows}


def med(server, mode, col):
    vals = [float(r[col]) for r in rows if r[0] == server and r[1] == mode]
    return statistics.median(vals) if vals else float("nan")


def errors(server):
    return sum(int(r[5]) for r in rows if r[0] == server)


def dropped(server):
    """Clicks answered but not kept (hand-off or spool full), all rounds."""
    return sum(int(r[6]) for r in rows if r[0] == server and len(r) > 6)


latency = {}
for s in SERVERS:
    path = f"{out}/raw/{s}-latency.json"
    try:
        data = json.load(open(path))
    except (OSError, ValueError):
        continue
    p = data.get("latencyPercentiles", {})
    latency[s] = {
        "rate": data["summary"].get("requestsPerSec", 0.0),
        **{k: (p.get(key) or 0.0) * 1000 for k, key in PCTS},
        "max": (data["summary"].get("slowest") or 0.0) * 1000,
        "ok": sum(v for k, v in data.get("statusCodeDistribution", {}).items() if k.startswith("3")),
        "bad": sum(v for k, v in data.get("statusCodeDistribution", {}).items() if not k.startswith("3"))
        # Requests still in flight when oha's time is up are not failures.
        + sum(v for k, v in data.get("errorDistribution", {}).items() if "deadline" not in k),
    }


def ratio(a, b):
    return a / b if b else float("nan")


def verdict(value, target, higher):
    if value != value:  # NaN: a server of the ratio was not run
        return "not run"
    ok = value >= target if higher else value <= target
    return "met" if ok else "**missed**"


settings = " ".join(
    f"{k}={chr(34) + v + chr(34) if ' ' in v else v}"
    for k in ("SERVERS", "SERVER_CPUS", "LOAD_CPUS", "WRK_THREADS")
    if (v := os.environ.get(k)) and not (k == "WRK_THREADS" and v == "2")
    and not (k == "SERVERS" and v.split() == SERVERS)
)
command = f"{settings + ' ' if settings else ''}bash loadtest/run.sh {args}".strip()

ka = {s: med(s, "ka", 3) for s in SERVERS}
close = {s: med(s, "close", 3) for s in SERVERS}
cpu = {s: med(s, "ka", 4) for s in SERVERS}
one = {s: med(s, "one", 3) for s in SERVERS}
one_cpu = {s: med(s, "one", 4) for s in SERVERS}
targets = [
    ("keep-alive req/s, refedge (spool) ÷ nginx", ratio(ka["spool"], ka["nginx"]), 1.0, True),
    # The Kafka sink's CPU: at most 1.5x nginx's now, on the way to parity.
    ("server CPU µs/request, refedge (Kafka on) ÷ nginx", ratio(cpu["kafka"], cpu["nginx"]), 1.5, False),
    ("the same, long-term goal", ratio(cpu["kafka"], cpu["nginx"]), 1.0, False),
    ("keep-alive req/s, refedge (spool) ÷ bare hyper", ratio(ka["spool"], ka["bare"]), 0.85, True),
    ("one request per connection, refedge (spool) ÷ nginx", ratio(close["spool"], close["nginx"]), 1.0, True),
    ("one client thread (wrk -t1), keep-alive, refedge (spool) ÷ nginx", ratio(one["spool"], one["nginx"]), 1.0, True),
    ("req/s, refedge broker down ÷ broker up", ratio(ka["kafka_down"], ka["kafka"]), 0.95, True),
]

cpu_model = next(
    (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
    "unknown",
)
versions = {
    "nginx": subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip(),
    "wrk": subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("\n")[0].strip(),
    "oha": subprocess.run(["oha", "--version"], capture_output=True, text=True).stdout.strip(),
}

with open(f"{out}/report.md", "w") as f:
    f.write("# refedge vs nginx vs bare hyper\n\n")
    f.write(
        f"Command: `{command}`; {links} links (deterministic seed), {rounds} alternating "
        f"round(s) of {secs} s per measure ({', '.join(s for s in SERVERS if s in ran)}), "
        f"wrk -t{os.environ.get('WRK_THREADS', '2')} -c64 (and -t1 -c64 for the one-client mode) with "
        f"{'Zipf-distributed' if os.environ.get('CODE_DIST') == 'zipf' else 'random'} "
        f"codes; latency with oha for {lat_secs} s at half of each server's median keep-alive maximum, "
        "coordinated-omission corrected.\n\n"
    )
    if os.environ.get("SERVER_CPUS"):
        sharing = (
            f"servers pinned to CPUs {os.environ['SERVER_CPUS']}, wrk, oha and the broker to CPUs "
            f"{os.environ.get('LOAD_CPUS', 'the rest')}"
        )
    else:
        sharing = "load generator, servers and (for kafka) the Tansu broker share it"
    f.write(
        f"Machine: {os.cpu_count()} cores, {cpu_model}, Linux {platform.release()}; {sharing}. "
        f"{versions['nginx']} (2 workers); {versions['wrk']}; {versions['oha']}.\n\n"
    )
    f.write("## Targets (medians)\n\n| measure | value | target | |\n| --- | ---: | ---: | --- |\n")
    for name, value, target, higher in targets:
        sign = "≥" if higher else "≤"
        f.write(f"| {name} | {value:.2f} | {sign} {target} | {verdict(value, target, higher)} |\n")
    if "spool" in latency:
        lat = latency["spool"]
        f.write(
            f"| p99 / p99.9 at half of max rate, refedge (spool) | {lat['p99']:.2f} / {lat['p99.9']:.2f} ms "
            f"| ≤ 1 / ≤ 5 ms | {verdict(-max(lat['p99'] - 1, lat['p99.9'] - 5), 0, True)} |\n"
        )
    f.write("\n## Throughput and CPU (medians)\n\n")
    f.write(
        "| server | keep-alive req/s | one request per connection req/s | CPU µs/request (keep-alive) "
        "| one client req/s | CPU µs/request (one client) | errors "
        "| click events dropped (hand-off or spool full) |\n"
    )
    f.write("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
    for s in SERVERS:
        if s in ran:
            f.write(
                f"| {NAMES[s]} | {ka[s]:.0f} | {close[s]:.0f} | {cpu[s]:.2f} | {one[s]:.0f} | {one_cpu[s]:.2f} "
                f"| {errors(s)} | {dropped(s)} |\n"
            )
    f.write("\n## Latency at half of the maximum rate (ms)\n\n")
    f.write("| server | rate req/s | p50 | p90 | p99 | p99.9 | max | non-3xx + errors |\n")
    f.write("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
    for s in SERVERS:
        if s in latency:
            lat = latency[s]
            f.write(
                f"| {NAMES[s]} | {lat['rate']:.0f} | {lat['p50']:.3f} | {lat['p90']:.3f} | {lat['p99']:.3f} "
                f"| {lat['p99.9']:.3f} | {lat['max']:.3f} | {lat['bad']} |\n"
            )
    f.write("\n![latency percentiles](latency.png)\n\nRaw wrk and oha outputs are in `raw/`.\n")

fig, ax = plt.subplots(figsize=(8, 4.5))
labels = [k for k, _ in PCTS] + ["max"]
for s in SERVERS:
    if s in latency:
        ax.plot(labels, [latency[s][k] for k in labels], marker="o", label=NAMES[s])
ax.set_yscale("log")
ax.set_ylabel("latency (ms, log scale)")
ax.set_title("Latency at half of each server's maximum rate")
ax.legend()
fig.tight_layout()
fig.savefig(f"{out}/latency.png", dpi=100)
print(open(f"{out}/report.md").read())
