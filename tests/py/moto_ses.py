"""Talks to a moto_server standing in for Amazon SES, with boto3 (the AWS SDK
moto ships with): an independent client, so postern's SigV4 requests are
not the only thing the emulator sees.

  moto_ses.py verify ENDPOINT REGION ACCESS_KEY IDENTITY
      marks IDENTITY (address or domain) as verified, as SES requires of a sender
  moto_ses.py sent ENDPOINT
      prints the raw messages moto received, as JSON
      [{"id", "source", "destinations", "raw_data"}]
"""

import json
import sys
import urllib.request


def verify(endpoint, region, access_key, identity):
    import boto3

    ses = boto3.client(
        "ses",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=access_key,
        aws_secret_access_key="unused-by-moto",
    )
    if "@" in identity:
        ses.verify_email_identity(EmailAddress=identity)
    else:
        ses.verify_domain_identity(Domain=identity)


def sent(endpoint):
    with urllib.request.urlopen(endpoint + "/moto-api/data.json", timeout=30) as r:
        data = json.load(r)
    raw = data.get("ses", {}).get("RawMessage", [])
    json.dump(
        [
            {k: m.get(k) for k in ("id", "source", "destinations", "raw_data")}
            for m in raw
        ],
        sys.stdout,
    )


def main(argv):
    if len(argv) == 6 and argv[1] == "verify":
        verify(*argv[2:])
    elif len(argv) == 3 and argv[1] == "sent":
        sent(argv[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
