#!/usr/bin/env python3
"""Spool segments for the matcher's harness: N click events and M conversion
events made from one real event of each kind (so sizes and fields are the
edge's own), with UUIDv7 click ids in time order over the last 30 days.

Usage: gen_events.py CLICK_LINE_FILE CONVERSION_LINE_FILE N M OUT_DIR SEED [MIX]
MIX `clicks` (default): every conversion carries a click id. MIX `rewards`:
60 % by click id, 25 % by referral code (CPN000..CPN099, one in twenty from
the advocate's own domain), 15 % reversals of an earlier one (its click id
or code).
Writes OUT_DIR/clicks/0000000000000001.jsonl, OUT_DIR/conversions/
0000000000000001.jsonl and OUT_DIR/click_ids.txt (1000 of the ids)."""
import json, os, random, sys, time

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def base62(n):
    out = []
    while n:
        n, r = divmod(n, 62)
        out.append(ALPHABET[r])
    return "".join(reversed(out)).rjust(22, "0")


def uuid7(ms, rng):
    value = (ms & 0xFFFFFFFFFFFF) << 80 | 7 << 76 | rng.getrandbits(12) << 64 | 2 << 62 | rng.getrandbits(62)
    return base62(value)


def rfc3339(ms):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + ".%03dZ" % (ms % 1000)


click_file, conversion_file, n, m, out, seed = sys.argv[1:7]
mix = sys.argv[7] if len(sys.argv) > 7 else "clicks"
n, m = int(n), int(m)
rng = random.Random(int(seed))
click = json.loads(open(click_file).readline())
conversion = json.loads(open(conversion_file).readline())
now = int(time.time() * 1000)
start = now - 30 * 86_400_000
os.makedirs(f"{out}/clicks", exist_ok=True)
os.makedirs(f"{out}/conversions", exist_ok=True)
ids, click_ms = [], {}
with open(f"{out}/clicks/0000000000000001.jsonl", "w") as f:
    for i in range(n):
        ms = start + (now - start) * i // max(n, 1)
        click["click_id"] = uuid7(ms, rng)
        click["occurred_at"] = rfc3339(ms)
        click["advocate_id"] = "adv-%d" % rng.randrange(10_000)
        ids.append((click["click_id"], ms))
        click_ms[click["click_id"]] = ms
        f.write(json.dumps(click, separators=(",", ":")) + "\n")
sent = []  # (event_id, click_id or None, code or None)
with open(f"{out}/conversions/0000000000000001.jsonl", "w") as f:
    for i in range(m):
        draw = rng.random() if mix == "rewards" else 0.0
        event_id, reverses, domain = "bench-%d" % i, None, None
        if draw < 0.60 or (draw >= 0.85 and not sent):
            click_id, ms = ids[rng.randrange(n)]
            code = None
        elif draw < 0.85:
            click_id, ms, code = None, None, "CPN%03d" % rng.randrange(100)
            if rng.random() < 0.05:
                domain = "%s.example" % code.lower()
        else:
            reverses, click_id, code = sent[rng.randrange(len(sent))]
            ms = click_ms.get(click_id)
        conversion.update(
            conversion_id=uuid7(now, rng),
            event_id=event_id,
            click_id=click_id,
            clicked_at=rfc3339(ms) if ms else None,
            within_window=ms is not None,
            reverses=reverses,
        )
        if mix == "rewards":
            conversion.update(referral_code=code, referral_host=None, customer_domain=domain)
        if reverses is None:
            sent.append((event_id, click_id, code))
        f.write(json.dumps(conversion, separators=(",", ":")) + "\n")
with open(f"{out}/click_ids.txt", "w") as f:
    for click_id, _ in rng.sample(ids, min(1000, n)):
        f.write(click_id + "\n")
