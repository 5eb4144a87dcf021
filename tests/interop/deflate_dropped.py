#!/usr/bin/env python3
"""A message the server refuses (SendStatus::Dropped) must not reach the compressor.

Usage: deflate_dropped.py ws://127.0.0.1:PORT

Connects with permessage-deflate and context takeover (the compressor's window is kept from
message to message), asks the server to flood it ("flood"), reads nothing for a while so the
server's queue passes max_buffered and later messages are dropped, then reads everything.
Every message must inflate and name an index larger than the one before; the server ends the
flood with "done". Prints `received N` and exits non-zero on any failure.
"""
import sys
import time

from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.sync.client import connect

URL = sys.argv[1]

factory = ClientPerMessageDeflateFactory(client_max_window_bits=True)
with connect(URL, extensions=[factory], max_size=None, compression=None,
             open_timeout=5, close_timeout=5) as ws:
    ws.send("flood")
    time.sleep(1.0)
    last = -1
    received = 0
    while True:
        message = ws.recv(timeout=10)
        if message == "done":
            break
        index = int(message.split(" ", 1)[0])
        if index <= last:
            print(f"out of order: {index} after {last}")
            sys.exit(1)
        last = index
        received += 1
    print(f"received {received}")
