"""Verify postern's DKIM signatures with an independent implementation.

Used by tests/dkim.rs. Reads one message file and checks every
DKIM-Signature in it with dkimpy (https://launchpad.net/dkimpy), whose DNS
lookups are answered by a stub fed with the zone-file lines that
`postern dkim keygen` printed (so the test also proves those lines, with
their 255-byte string splitting, are what a resolver would return).

Prints one JSON object: {"signatures": [{"d", "s", "a", "h", "ok"}, ...]}.
Exit 0 when the verification ran (whatever its result), 2 on usage errors.
"""

import argparse
import json
import re
import sys

import dkim


def parse_zone_line(line: str) -> tuple[str, bytes]:
    """`NAME. IN TXT ( "part" "part" )` -> (name, concatenated TXT data)."""
    m = re.match(r'^\s*(\S+)\s+IN\s+TXT\s+\(?(.*?)\)?\s*$', line)
    if not m:
        raise ValueError(f"not a TXT zone line: {line!r}")
    name = m.group(1).lower()
    if not name.endswith("."):
        name += "."
    parts = re.findall(r'"((?:[^"\\]|\\.)*)"', m.group(2))
    if not parts:
        raise ValueError(f"no quoted strings in: {line!r}")
    for p in parts:
        if len(p.encode()) > 255:
            raise ValueError(f"TXT string longer than 255 bytes ({len(p)})")
    data = "".join(re.sub(r"\\(.)", r"\1", p) for p in parts)
    return name, data.encode()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("message", help="file with the message as it left postern")
    ap.add_argument("--record", action="append", default=[],
                    help="zone-file TXT line printed by `postern dkim keygen`")
    args = ap.parse_args()

    zone = {}
    for line in args.record:
        name, data = parse_zone_line(line)
        zone[name] = data

    def stub(name, timeout=5):
        if isinstance(name, bytes):
            name = name.decode()
        name = name.lower()
        if not name.endswith("."):
            name += "."
        return zone.get(name)

    msg = open(args.message, "rb").read()
    d = dkim.DKIM(msg, minkey=1024)
    sigs = [v for (k, v) in d.headers if k.lower() == b"dkim-signature"]
    results = []
    for idx, raw in enumerate(sigs):
        tags = dkim.util.parse_tag_value(b"".join(raw.split()))
        try:
            ok = dkim.DKIM(msg, minkey=1024).verify(idx=idx, dnsfunc=stub)
        except dkim.DKIMException as e:
            ok = False
            print(f"signature {idx}: {e}", file=sys.stderr)
        results.append({
            "d": tags.get(b"d", b"").decode(),
            "s": tags.get(b"s", b"").decode(),
            "a": tags.get(b"a", b"").decode(),
            "h": tags.get(b"h", b"").decode(),
            "l": tags.get(b"l", b"").decode() if b"l" in tags else None,
            "ok": bool(ok),
        })
    # dkim.verify() is what most receivers' glue calls: the first signature.
    first = dkim.verify(msg, dnsfunc=stub) if sigs else False
    print(json.dumps({"signatures": results, "verify_first": bool(first)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
