#!/usr/bin/env python3
"""ws_check.py PORT PATH_AND_QUERY WANT: a WebSocket handshake through the
web server; prints the first text frame's payload and exits 0 when the
upgrade answered 101 and the frame contains WANT."""
import base64, os, socket, sys

port, target, want = int(sys.argv[1]), sys.argv[2], sys.argv[3]
key = base64.b64encode(os.urandom(16)).decode()
s = socket.create_connection(("127.0.0.1", port), timeout=5)
s.sendall((f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
buf = b""
while b"\r\n\r\n" not in buf:
    chunk = s.recv(4096)
    if not chunk:
        sys.exit(f"connection closed during the handshake: {buf!r}")
    buf += chunk
head, buf = buf.split(b"\r\n\r\n", 1)
status = head.split(b"\r\n", 1)[0].decode()
if " 101 " not in status + " ":
    sys.exit(f"handshake answered {status}")


def need(n):
    global buf
    while len(buf) < n:
        chunk = s.recv(4096)
        if not chunk:
            sys.exit("connection closed before a frame")
        buf += chunk


need(2)
opcode, n = buf[0] & 0x0F, buf[1] & 0x7F
off = 2
if n == 126:
    need(4); n = int.from_bytes(buf[2:4], "big"); off = 4
elif n == 127:
    need(10); n = int.from_bytes(buf[2:10], "big"); off = 10
need(off + n)
payload = buf[off:off + n].decode("utf-8", "replace")
print(payload)
s.close()
sys.exit(0 if opcode == 1 and want in payload else 1)
