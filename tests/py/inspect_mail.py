"""Read a message back with Python's `email` package, as a receiver would.

Used by tests/it/clients.rs: every client of the matrix sends the same message
through postern, and this script says what the message that reached the
upstream means, with a parser that is not postern's (mail-parser). Prints one
JSON object:

  {"subject": decoded with email.policy.default,
   "subject_legacy": decoded with decode_header() + make_header(), the older
                     API many scripts still use,
   "from": [addr-spec, ...], "to": [addr-spec, ...],
   "received": [each Received header, unfolded],
   "text": the text/plain body part, decoded to text,
   "attachments": [{"filename", "content_type", "data_b64"}],
   "defects": [parser defects anywhere in the message],
   "header_8bit": true when the header section has raw bytes >= 0x80}

Stdlib only.
"""

import base64
import email
import email.header
import email.policy
import json
import sys


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: inspect_mail.py MESSAGE", file=sys.stderr)
        return 2
    raw = open(sys.argv[1], "rb").read()
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    old = email.message_from_bytes(raw)

    end = raw.find(b"\r\n\r\n")
    head = raw if end < 0 else raw[:end]

    def addrs(name):
        return [a.addr_spec for v in (msg.get_all(name) or []) for a in v.addresses]

    body = msg.get_body(preferencelist=("plain",))
    attachments = []
    for part in msg.iter_attachments():
        attachments.append({
            "filename": part.get_filename(),
            "content_type": part.get_content_type(),
            "data_b64": base64.b64encode(part.get_payload(decode=True) or b"").decode(),
        })
    defects = [repr(d) for part in msg.walk() for d in part.defects]
    for name, value in msg.items():
        defects.extend("%s: %r" % (name, d) for d in getattr(value, "defects", ()))

    out = {
        "subject": str(msg["subject"]) if msg["subject"] is not None else None,
        "subject_legacy": str(email.header.make_header(email.header.decode_header(old["subject"])))
        if old["subject"] is not None else None,
        "from": addrs("from"),
        "to": addrs("to"),
        "received": [" ".join(str(v).split()) for v in (msg.get_all("received") or [])],
        "text": body.get_content() if body is not None else None,
        "attachments": attachments,
        "defects": defects,
        "header_8bit": any(b >= 0x80 for b in head),
    }
    print(json.dumps(out, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
