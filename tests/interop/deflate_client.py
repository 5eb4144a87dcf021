#!/usr/bin/env python3
"""permessage-deflate interop: the Python `websockets` client (an independent RFC 7692
implementation) against a wsloop echo server started with deflate on.

Usage: deflate_client.py ws://127.0.0.1:PORT

For each offer variant it checks what the server answered in Sec-WebSocket-Extensions, then
that text and binary messages of many sizes (below and above the compression threshold,
compressible and not, up to 1 MiB) come back intact. Prints `N passed, M failed` last and
exits non-zero on any failure.
"""
import os
import sys

from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.sync.client import connect

URL = sys.argv[1]

# (name, client factory arguments, what the server's answer must contain)
VARIANTS = [
    ("browser-like offer", dict(client_max_window_bits=True), ["permessage-deflate"]),
    ("no context takeover both ways",
     dict(server_no_context_takeover=True, client_no_context_takeover=True),
     ["server_no_context_takeover", "client_no_context_takeover"]),
    ("small windows", dict(server_max_window_bits=10, client_max_window_bits=9),
     ["server_max_window_bits=10", "client_max_window_bits=9"]),
    # Python's zlib refuses to compress with 8 bits itself, so only the server uses 8.
    ("server window bits 8", dict(server_max_window_bits=8, client_max_window_bits=9),
     ["server_max_window_bits=8"]),
]


def payloads():
    yield "short"
    yield "é" * 40
    yield "compressible " * 1000
    yield b"\x00" * 200_000
    yield os.urandom(70_000)  # incompressible: deflate output is larger than the input
    yield ("json-ish {\"k\": %d} " * 50_000) % tuple(range(50_000))
    yield bytes(range(256)) * 4096  # 1 MiB


def run_variant(name, kwargs, expect):
    factory = ClientPerMessageDeflateFactory(**kwargs)
    with connect(URL, extensions=[factory], compression=None, max_size=32 << 20) as ws:
        answer = ws.response.headers.get("Sec-WebSocket-Extensions", "")
        for part in expect:
            if part not in answer:
                raise AssertionError(f"{name}: {part!r} missing from the answer {answer!r}")
        # Twice over, so context takeover (the shared window) is exercised.
        for _ in range(2):
            for message in payloads():
                ws.send(message)
                echo = ws.recv()
                if echo != message:
                    raise AssertionError(f"{name}: echo of a {type(message).__name__} "
                                         f"of {len(message)} differs")


def main():
    passed = failed = 0
    for name, kwargs, expect in VARIANTS:
        try:
            run_variant(name, kwargs, expect)
            print(f"ok   {name}")
            passed += 1
        except Exception as err:  # report every variant, then fail
            print(f"FAIL {name}: {err!r}")
            failed += 1
    print(f"interop: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
