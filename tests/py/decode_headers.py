"""Decode a message's headers with Python's `email` package.

Used by tests/inspect.rs and tests/dkim.rs to check that postern's
RFC 2047 / RFC 2231 repairs of 8-bit headers read back as the text the
client meant, with an independent decoder (`email.policy.default`, the
RFC 5322/2047-aware parser, and `email.header.decode_header`, the older
one many scripts still use).

Prints one JSON object:
  {"headers": {NAME: [decoded value, ...]},
   "legacy": {NAME: [decode_header() + make_header() value, ...]},
   "addresses": {NAME: [[display name, addr-spec], ...]},
   "filenames": [...], "defects": {NAME: [...]}}
for the header NAMEs given on the command line (all occurrences).
"""

import email
import email.header
import email.policy
import json
import sys


def main() -> int:
    if len(sys.argv) < 2:
        print("usage: decode_headers.py MESSAGE NAME...", file=sys.stderr)
        return 2
    raw = open(sys.argv[1], "rb").read()
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    old = email.message_from_bytes(raw)
    out = {"headers": {}, "legacy": {}, "addresses": {}, "defects": {}, "filenames": []}
    for name in sys.argv[2:]:
        values = msg.get_all(name) or []
        out["headers"][name] = [str(v) for v in values]
        out["defects"][name] = [repr(d) for v in values for d in getattr(v, "defects", [])]
        out["legacy"][name] = [
            str(email.header.make_header(email.header.decode_header(v)))
            for v in (old.get_all(name) or [])
        ]
        addrs = []
        for v in values:
            for a in getattr(v, "addresses", ()):
                addrs.append([a.display_name, a.addr_spec])
        out["addresses"][name] = addrs
    for part in msg.walk():
        fn = part.get_filename()
        if fn is not None:
            out["filenames"].append(fn)
    print(json.dumps(out, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
