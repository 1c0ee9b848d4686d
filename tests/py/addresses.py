"""Reads recipient addresses the way Python's email package does: an
independent parser, so postern's own reading is not the only judge.

  addresses.py mime FILE     every address in the To, Cc, Bcc, Resent-To,
                             Resent-Cc and Resent-Bcc fields of the message
  addresses.py list TEXT...  the addresses in address-list strings

Prints a JSON array of the addresses (display names left out).
"""

import email
import email.policy
import json
import sys
from email.utils import getaddresses

FIELDS = ("to", "cc", "bcc", "resent-to", "resent-cc", "resent-bcc")


def main(argv):
    if len(argv) == 3 and argv[1] == "mime":
        with open(argv[2], "rb") as f:
            msg = email.message_from_binary_file(f, policy=email.policy.compat32)
        values = [str(v) for k, v in msg.items() if k.lower() in FIELDS]
    elif len(argv) >= 2 and argv[1] == "list":
        values = argv[2:]
    else:
        sys.exit(__doc__)
    json.dump([addr for _, addr in getaddresses(values) if addr], sys.stdout)


if __name__ == "__main__":
    main(sys.argv)
