#!/usr/bin/env python3
"""Stand-in application for the e2e tests and the demo.

Usage: app.py PORT INSTANCE

Answers every request with 200 and a one-line JSON body naming INSTANCE, the method and the path;
the response carries `x-instance: INSTANCE`. It counts the requests it served. Two paths are its own
and are not counted: `/__count` (the count so far) and `/__reset`. `/slow?ms=N` sleeps N ms first.
A WebSocket opening handshake (`Upgrade: websocket`) on any path is answered 101, after which the
connection echoes every message until the client closes. HTTP/1.1 keep-alive, one thread per
connection.
"""
import json
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from wsframe import CLOSE, accept, read_frame, write_frame

PORT = int(sys.argv[1])
INSTANCE = sys.argv[2]
LOCK = threading.Lock()
COUNT = 0


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        # headers and body go out in two writes: without this, Nagle + delayed ACK add 40 ms
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, *args):  # quiet
        pass

    def _websocket(self):
        self.send_response(101)
        self.send_header("upgrade", "websocket")
        self.send_header("connection", "Upgrade")
        self.send_header("sec-websocket-accept", accept(self.headers.get("sec-websocket-key", "")))
        self.send_header("x-instance", INSTANCE)
        self.end_headers()
        self.wfile.flush()
        while True:
            frame = read_frame(self.rfile)
            if frame is None:
                break
            write_frame(self.wfile, frame[0], frame[1], masked=False)
            if frame[0] == CLOSE:
                break
        self.close_connection = True

    def _answer(self):
        global COUNT
        url = urlsplit(self.path)
        if (self.headers.get("upgrade", "").lower() == "websocket"
                and "upgrade" in self.headers.get("connection", "").lower()):
            with LOCK:
                COUNT += 1
            return self._websocket()
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        if url.path == "/__count":
            with LOCK:
                body = str(COUNT).encode()
        elif url.path == "/__reset":
            with LOCK:
                COUNT = 0
            body = b"0"
        else:
            if url.path == "/slow":
                ms = int(parse_qs(url.query).get("ms", ["1000"])[0])
                time.sleep(ms / 1000.0)
            with LOCK:
                COUNT += 1
            body = (json.dumps({"instance": INSTANCE, "method": self.command, "path": self.path,
                                "host": self.headers.get("host"),
                                "x-user": self.headers.get("x-user")}) + "\n").encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("x-instance", INSTANCE)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _answer


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


if __name__ == "__main__":
    Server(("127.0.0.1", PORT), Handler).serve_forever()
