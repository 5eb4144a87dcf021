#!/usr/bin/env python3
"""What an idle connection costs with permessage-deflate, after it has used it.

Opens N connections to a running wsloop (started with --deflate and the options under test),
has each send one compressed message (masked, RSV1) and read the echo, so both its inflater
and its deflater exist if the configuration keeps them, then samples the server's RSS.

Usage: deflate_idle_memory.py PORT SERVER_PID N
Prints one line: connections, RSS before and after, bytes per connection.
"""
import os
import socket
import sys
import time
import zlib

PORT, PID, N = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
REQUEST = (
    b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
)


def rss():
    with open(f"/proc/{PID}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise SystemExit("no VmRSS")


def compressed_frame(text):
    deflater = zlib.compressobj(1, zlib.DEFLATED, -15)
    body = deflater.compress(text) + deflater.flush(zlib.Z_SYNC_FLUSH)
    assert body.endswith(b"\x00\x00\xff\xff")
    body = body[:-4]
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(body))
    assert len(body) < 126
    return bytes([0xC1, 0x80 | len(body)]) + mask + masked  # FIN, RSV1, text


def read_until(sock, predicate):
    data = b""
    while not predicate(data):
        chunk = sock.recv(65536)
        if not chunk:
            raise SystemExit("server closed the connection")
        data += chunk
    return data


def main():
    before = rss()
    frame = compressed_frame(b"a fairly compressible message " * 24)  # 720 B: over the 512 B threshold
    socks = []
    for _ in range(N):
        sock = socket.create_connection(("127.0.0.1", PORT))
        sock.sendall(REQUEST)
        response = read_until(sock, lambda d: b"\r\n\r\n" in d)
        assert b"101 Switching" in response and b"permessage-deflate" in response, response
        sock.sendall(frame)
        echo = read_until(sock, lambda d: len(d) >= 2)
        assert echo[0] & 0x40, "the echo was not compressed: is the threshold above 720 bytes?"
        socks.append(sock)
    time.sleep(1)
    after = rss()
    print(f"connections={N} rss_before={before} rss_after={after} "
          f"per_connection={(after - before) / N:.0f} B")


if __name__ == "__main__":
    main()
