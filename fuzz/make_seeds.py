#!/usr/bin/env python3
"""Writes the committed seed corpus (fuzz/corpus/<target>/seed-*). Run from anywhere:
python3 fuzz/make_seeds.py. Each seed is a small, valid or nearly valid input that gets a
target past its first checks; libFuzzer mutates from there."""
import os
import struct
import zlib

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
MASK = bytes([0x37, 0xFA, 0x21, 0x3D])


def header(fin, rsv, opcode, length, mask=MASK):
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    mbit = 0x80 if mask is not None else 0
    if length < 126:
        out = bytes([b0, mbit | length])
    elif length <= 0xFFFF:
        out = bytes([b0, mbit | 126]) + struct.pack(">H", length)
    else:
        out = bytes([b0, mbit | 127]) + struct.pack(">Q", length)
    return out + (mask or b"")


def frame(fin, opcode, payload, rsv=0, mask=MASK):
    body = payload if mask is None else bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return header(fin, rsv, opcode, len(payload), mask) + body


def deflate_raw(data, wbits=15):
    c = zlib.compressobj(1, zlib.DEFLATED, -wbits)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


REQUEST = (
    b"GET /chat HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
REQUEST_DEFLATE = REQUEST[:-2] + (
    b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    b"Sec-WebSocket-Protocol: chat, superchat\r\nOrigin: http://localhost\r\n\r\n"
)

FRAMES = (
    frame(True, 0x1, b"Hello")
    + frame(False, 0x1, "a\u20ac".encode()[:2])
    + frame(True, 0x9, b"ping")
    + frame(True, 0x0, "a\u20ac".encode()[2:] + b"b")
    + frame(True, 0x2, bytes(range(200)))
    + frame(True, 0xA, b"")
    + frame(True, 0x8, struct.pack(">H", 1000) + b"bye")
)
BAD_UTF8_SPLIT = frame(False, 0x1, b"ok\xe2") + frame(True, 0x0, b"\x28")
COMPRESSED = frame(True, 0x1, deflate_raw(b"compressible text " * 20), rsv=4) + frame(
    True, 0x2, deflate_raw(bytes(300)), rsv=4
)
TOO_BIG = frame(True, 0x2, bytes(300))
PING_FLOOD = frame(True, 0x9, b"p" * 125) * 8


def seeds():
    max_1m, max_1000, max_125 = 13 << 4, 8 << 4, 5 << 4
    yield "frame_header", "masked-text", header(True, 0, 0x1, 5)
    yield "frame_header", "len16", header(True, 0, 0x2, 256)
    yield "frame_header", "len64", header(False, 4, 0x2, 1 << 40)
    yield "frame_header", "len64-max", header(True, 0, 0x2, (1 << 63) - 1)
    yield "frame_header", "ping-unmasked", header(True, 0, 0x9, 125, None)
    yield "frame_header", "close", header(True, 0, 0x8, 2)

    yield "handshake", "upgrade", REQUEST
    yield "handshake", "upgrade-deflate", REQUEST_DEFLATE
    yield "handshake", "offers", REQUEST[:-2] + (
        b"Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; "
        b"client_max_window_bits=10, permessage-deflate; server_max_window_bits=\"8\"\r\n\r\n"
    )
    yield "handshake", "healthz", b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    yield "handshake", "post", b"POST / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n"
    yield "handshake", "http10", REQUEST.replace(b"HTTP/1.1", b"HTTP/1.0")
    yield "handshake", "version8", REQUEST.replace(b"Version: 13", b"Version: 8")

    # session: flags, splits, chunk sizes, stream.
    yield "session", "handshake-frames", bytes([0x01 | max_1m, 3, 4, 0, 39]) + REQUEST + FRAMES
    yield "session", "frames-only", bytes([max_1m, 1, 2]) + FRAMES
    yield "session", "bad-utf8-split", bytes([max_1000, 0]) + BAD_UTF8_SPLIT
    yield "session", "deflate-handshake", bytes([0x03 | max_1m, 1, 10]) + REQUEST_DEFLATE + COMPRESSED
    yield "session", "deflate-no-context", bytes([0x06 | max_1000, 0]) + COMPRESSED
    yield "session", "too-big", bytes([max_125, 0x82, 7, 100]) + PING_FLOOD + TOO_BIG

    def msgs(*parts):
        return b"".join(struct.pack("<H", len(p)) + p for p in parts)

    text = b"the quick brown fox jumps over the lazy dog " * 4
    yield "inflate", "two-messages", bytes([10]) + msgs(deflate_raw(text), deflate_raw(text[:50]))
    yield "inflate", "bomb", bytes([4]) + msgs(deflate_raw(bytes(100_000)))
    yield "inflate", "final-block", bytes([0x1A]) + msgs(zlib.compressobj(9, zlib.DEFLATED, -15).compress(b"abc") + zlib.compressobj(9, zlib.DEFLATED, -15).flush())
    yield "inflate", "text", bytes([0x80 | 9]) + msgs(deflate_raw("h\u00e9llo".encode()), deflate_raw(b"\xff\xfe"))
    yield "inflate", "round-trip", bytes([0x40 | 0x10]) + msgs(text, b"", bytes(range(256)) * 3)
    yield "inflate", "round-trip-context", bytes([0x40 | 0x20]) + msgs(text, text, text[7:])

    yield "mask_differential", "aligned", MASK + bytes([0, 0, 8, 0]) + bytes(range(64))
    yield "mask_differential", "odd", MASK + bytes([3, 5, 13, 0]) + bytes(range(37))
    yield "mask_differential", "long", MASK + bytes([1, 63, 0, 2]) + bytes(1000)

    yield "url", "plain", b"ws://127.0.0.1:9001/chat?room=1"
    yield "url", "secure-default-port", b"wss://Example.COM:443/"
    yield "url", "ipv6", b"ws://[::1]:9001"
    yield "url", "https", b"https://example.com/path%20x?q='a'"
    yield "url", "fragment", b"ws://h/#frag"
    yield "url", "userinfo", b"ws://user:pass@h/"


for target, name, data in seeds():
    os.makedirs(os.path.join(ROOT, target), exist_ok=True)
    with open(os.path.join(ROOT, target, "seed-" + name), "wb") as f:
        f.write(data)
