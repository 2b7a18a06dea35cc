#!/usr/bin/env python3
"""Writes N links as JSON Lines, deterministically from a seed.

Usage: loadtest/gen_links.py N [SEED] [--snapshot] [--preview] > links.jsonl

With --snapshot the same links are written as a links snapshot (the format of
`links.snapshot_file`, links not from the links file), for start-up tests.

Codes are 7-10 base62 characters, unique; targets about 80 bytes; every link
has an advocate id, a campaign (one of 200) and a program (one of 10), and one
link in ten is bound to one of 5 brand domains. With --preview every link
carries a personal preview: a 120-byte title and a 200-byte description. The raw bytes of the fields
(what a link is worth before any overhead) are printed to stderr.
"""
import random
import sys

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    snapshot = "--snapshot" in sys.argv
    preview = "--preview" in sys.argv
    n = int(args[0])
    rng = random.Random(int(args[1]) if len(args) > 1 else 42)
    seen = set()
    raw = 0
    out = sys.stdout
    buf = []
    if snapshot:
        out.write('{"refedge_links_snapshot":1,"offsets":{}}\n')
    for i in range(n):
        while True:
            code = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(7, 10)))
            if code not in seen:
                seen.add(code)
                break
        slug = "".join(rng.choice(ALPHABET) for _ in range(12))
        target = f"https://www.brand{i % 97}.example/landing/{slug}?utm_source=referral&utm_medium=adv"
        advocate = f"adv-{i:09d}"
        campaign = f"campaign-{i % 200:03d}"
        program = f"program-{i % 10}"
        domain = f"go.brand{i % 5}.example" if i % 10 == 0 else None
        raw += len(code) + len(target) + len(advocate) + len(campaign) + len(program) + (len(domain) if domain else 0)
        dom = f'"domain":"{domain}",' if domain else ""
        pre = ""
        if preview:
            title = f"Advocate {i:09d} at ACME recommends Payroll for growing teams".ljust(120, ".")
            description = f"Run payroll in minutes: {advocate} has used it since 2024 and invites you to try it.".ljust(200, ".")
            raw += len(title) + len(description)
            pre = f',"preview":{{"title":"{title}","description":"{description}"}}'
        link = f'{{"code":"{code}","target":"{target}",{dom}"advocate_id":"{advocate}","campaign_id":"{campaign}","program_id":"{program}"{pre}}}'
        buf.append(f'{{"file":false,"link":{link}}}\n' if snapshot else link + "\n")
        if len(buf) >= 100_000:
            out.write("".join(buf))
            buf.clear()
    out.write("".join(buf))
    print(f"raw_bytes={raw} raw_bytes_per_link={raw / max(n, 1):.1f}", file=sys.stderr)


if __name__ == "__main__":
    main()
