"""Send one message with Python's smtplib, as a legacy Python app would.

Used by the Rust integration tests (tests/it/relay.rs, tests/it/clients.rs). It
builds an email.message.EmailMessage (text body with a dot-leading line and an
optional binary attachment, or a given body and file), sends it over STARTTLS
or implicit TLS with AUTH, and writes the exact message content it handed to
smtplib to --out so the test can compare it byte for byte with what reached
the upstream. Prints the reply to the final dot as `DATA-REPLY: CODE TEXT`.
Stdlib only.
"""

import argparse
import email.policy
import os
import smtplib
import ssl
import sys
from email.message import EmailMessage


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--mode", choices=["starttls", "implicit"], required=True)
    ap.add_argument("--cafile", required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--sender", required=True)
    ap.add_argument("--to", required=True, help="comma separated")
    ap.add_argument("--subject", default="smtplib test")
    ap.add_argument("--attach-size", type=int, default=0)
    ap.add_argument("--body-file", help="text body (UTF-8) instead of the default")
    ap.add_argument("--attach-file", help="attach this file under its own name")
    ap.add_argument("--attach-type", default="application/octet-stream")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()

    rcpts = [r for r in a.to.split(",") if r]
    msg = EmailMessage()
    msg["From"] = a.sender
    msg["To"] = ", ".join(rcpts)
    msg["Subject"] = a.subject
    msg["Date"] = "Mon, 02 Mar 2026 10:00:00 +0000"
    msg["Message-ID"] = "<smtplib-%d@example.com>" % a.port
    if a.body_file:
        with open(a.body_file, encoding="utf-8") as f:
            msg.set_content(f.read())
    else:
        msg.set_content("Hello from smtplib.\n.this line starts with a dot\n..and this with two\n")
    if a.attach_file:
        maintype, subtype = a.attach_type.split("/", 1)
        with open(a.attach_file, "rb") as f:
            msg.add_attachment(f.read(), maintype=maintype, subtype=subtype,
                               filename=os.path.basename(a.attach_file))
    if a.attach_size:
        # Every byte value, repeated: exercises base64 lines of all kinds.
        blob = bytes((i * 7 + i // 256) % 256 for i in range(a.attach_size))
        msg.add_attachment(blob, maintype="application", subtype="octet-stream",
                           filename="blob.bin")
    raw = msg.as_bytes(policy=email.policy.SMTP)
    # smtplib.data() appends CRLF when missing; record the content as it will be.
    content = raw if raw.endswith(b"\r\n") else raw + b"\r\n"
    with open(a.out, "wb") as f:
        f.write(content)

    ctx = ssl.create_default_context(cafile=a.cafile)
    if a.mode == "implicit":
        s = smtplib.SMTP_SSL("127.0.0.1", a.port, context=ctx, timeout=60)
        s.ehlo("pyclient.test")
    else:
        s = smtplib.SMTP("127.0.0.1", a.port, timeout=60)
        s.ehlo("pyclient.test")
        s.starttls(context=ctx)
        s.ehlo("pyclient.test")
    s.login(a.user, a.password)
    code, resp = s.mail(a.sender)
    if code != 250:
        print("MAIL failed: %d %s" % (code, resp.decode(errors="replace")))
        return 1
    for r in rcpts:
        code, resp = s.rcpt(r)
        if code not in (250, 251):
            print("RCPT failed: %d %s" % (code, resp.decode(errors="replace")))
            return 1
    code, resp = s.data(raw)
    print("DATA-REPLY: %d %s" % (code, resp.decode(errors="replace")))
    s.quit()
    return 0 if code == 250 else 1


if __name__ == "__main__":
    sys.exit(main())
