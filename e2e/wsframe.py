"""WebSocket (RFC 6455) pieces shared by the stand-in application and the e2e client: the
handshake's accept value and framing. Standard library only."""
import base64
import hashlib
import os
import struct

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TEXT, CLOSE = 0x1, 0x8


def accept(key):
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 section 4.2.2)."""
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def write_frame(f, opcode, payload, masked):
    """One final frame; a client masks (section 5.3), a server does not."""
    head = bytes([0x80 | opcode])
    bit = 0x80 if masked else 0
    n = len(payload)
    if n < 126:
        head += bytes([bit | n])
    elif n < 65536:
        head += bytes([bit | 126]) + struct.pack(">H", n)
    else:
        head += bytes([bit | 127]) + struct.pack(">Q", n)
    if masked:
        mask = os.urandom(4)
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        head += mask
    f.write(head + payload)
    f.flush()


def read_exact(f, n):
    data = b""
    while len(data) < n:
        chunk = f.read(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def read_frame(f):
    """(opcode, payload) of the next frame, unmasked; None at end of stream."""
    head = read_exact(f, 2)
    if head is None:
        return None
    opcode, n = head[0] & 0x0F, head[1] & 0x7F
    if n == 126:
        n = struct.unpack(">H", read_exact(f, 2) or b"\0\0")[0]
    elif n == 127:
        n = struct.unpack(">Q", read_exact(f, 8) or bytes(8))[0]
    mask = read_exact(f, 4) if head[1] & 0x80 else None
    payload = read_exact(f, n) if n else b""
    if payload is None:
        return None
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return opcode, payload
