#!/usr/bin/env python3
"""wss:// interop: the Python `websockets` client over Python's own TLS (OpenSSL, through
the `ssl` module) against a wsloop echo server, trusting only the test CA.

Usage: wss_client.py wss://localhost:PORT/ CA_FILE

Checks that the certificate verifies for `localhost` against CA_FILE, that ALPN settled on
http/1.1, and that text and binary messages up to 1 MiB come back intact. Prints
`wss interop: N passed, M failed` last and exits non-zero on any failure.
"""
import os
import ssl
import sys

from websockets.sync.client import connect

URL, CA_FILE = sys.argv[1], sys.argv[2]


def main():
    context = ssl.create_default_context(cafile=CA_FILE)
    context.set_alpn_protocols(["http/1.1"])
    checks = [
        ("text", "hello over TLS"),
        ("unicode text", "é" * 5000),
        ("binary 70 KB", os.urandom(70_000)),
        ("binary 1 MiB", bytes(range(256)) * 4096),
    ]
    passed = failed = 0
    with connect(URL, ssl=context, max_size=32 << 20, compression=None) as ws:
        alpn = ws.socket.selected_alpn_protocol()
        if alpn != "http/1.1":
            print(f"FAIL alpn: {alpn!r}")
            failed += 1
        for name, payload in checks:
            ws.send(payload)
            echoed = ws.recv()
            if echoed == payload:
                passed += 1
            else:
                failed += 1
                print(f"FAIL {name}: {len(echoed)} bytes back for {len(payload)}")
    print(f"wss interop: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
