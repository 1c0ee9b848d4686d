"""A stand-in journald: binds /run/systemd/journal/socket (run it in a
private mount namespace with a tmpfs there), runs a command, and appends
every datagram it receives, decoded from journald's native protocol, to
OUT as one JSON object per line (a field sent twice becomes a list).

  journal_sink.py OUT -- COMMAND [ARG...]

The command gets SIGTERM when this process dies, and this process exits
with the command's status.
"""

import ctypes
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading

SOCKET = "/run/systemd/journal/socket"
PR_SET_PDEATHSIG = 1


def parse(datagram):
    """KEY=value lines, or KEY, a little-endian u64 length, the bytes, LF."""
    fields = {}
    i = 0
    while i < len(datagram):
        nl = datagram.index(b"\n", i)
        line = datagram[i:nl]
        if b"=" in line:
            key, value = line.split(b"=", 1)
            i = nl + 1
        else:
            key = line
            (n,) = struct.unpack("<Q", datagram[nl + 1 : nl + 9])
            value = datagram[nl + 9 : nl + 9 + n]
            if datagram[nl + 9 + n : nl + 10 + n] != b"\n":
                raise ValueError("binary field not terminated by LF")
            i = nl + 10 + n
        fields.setdefault(key.decode(), []).append(value.decode("utf-8", "replace"))
    return {k: v[0] if len(v) == 1 else v for k, v in fields.items()}


def main(argv):
    if len(argv) < 4 or argv[2] != "--":
        sys.exit(__doc__)
    out_path, command = argv[1], argv[3:]
    os.makedirs(os.path.dirname(SOCKET), exist_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(SOCKET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    out = open(out_path, "a", buffering=1)

    def receive():
        while True:
            data = sock.recv(1 << 20)
            if data:
                out.write(json.dumps(parse(data)) + "\n")

    threading.Thread(target=receive, daemon=True).start()
    libc = ctypes.CDLL(None, use_errno=True)
    child = subprocess.Popen(
        command, preexec_fn=lambda: libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    )
    for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(s, lambda sig, _: child.send_signal(sig))
    status = child.wait()
    out.flush()
    sys.exit(status if status >= 0 else 128 - status)


if __name__ == "__main__":
    main(sys.argv)
