#!/usr/bin/env python3
"""WebSocket client for the e2e tests: ws.py PORT HOST PATH

Opens a WebSocket through a sidecar's outbound listener (origin form, destination from Host),
checks the 101 and its Sec-WebSocket-Accept, sends two text messages (a short one and a 70 KB one)
and checks that each comes back whole, then closes. Prints what it saw; exits 1 on any mismatch."""
import base64
import os
import socket
import sys

from wsframe import CLOSE, TEXT, accept, read_frame, write_frame

port, host, path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
key = base64.b64encode(os.urandom(16)).decode()
s = socket.create_connection(("127.0.0.1", port), timeout=5)
f = s.makefile("rwb")
f.write((f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
f.flush()
status = f.readline().decode().strip()
headers = {}
while True:
    line = f.readline().decode()
    if line in ("\r\n", ""):
        break
    name, _, value = line.partition(":")
    headers[name.strip().lower()] = value.strip()
if not status.startswith("HTTP/1.1 101"):
    sys.exit(f"expected 101, got {status!r} {headers}")
if headers.get("sec-websocket-accept") != accept(key):
    sys.exit(f"bad Sec-WebSocket-Accept {headers.get('sec-websocket-accept')!r}")
if headers.get("upgrade", "").lower() != "websocket":
    sys.exit(f"bad Upgrade {headers.get('upgrade')!r}")
for message in (b"hello through the mesh", os.urandom(35000).hex().encode()):
    write_frame(f, TEXT, message, masked=True)
    frame = read_frame(f)
    if frame != (TEXT, message):
        sys.exit(f"echo of a {len(message)}-byte message: got {frame and (frame[0], len(frame[1]))}")
write_frame(f, CLOSE, b"\x03\xe8", masked=True)
frame = read_frame(f)
if not frame or frame[0] != CLOSE:
    sys.exit(f"no close frame back: {frame}")
print(f"{status}; accept ok; instance {headers.get('x-instance')}; 2 messages echoed; closed")
