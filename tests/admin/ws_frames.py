#!/usr/bin/env python3
"""A minimal WebSocket client for the admin tests (standard library only).

    ws_frames.py HOST PORT PATH COUNT

Does the RFC 6455 opening handshake (no extensions, so frames arrive
uncompressed), checks Sec-WebSocket-Accept, reads COUNT server frames and
prints each text payload on its own line. Exits 1 on anything unexpected:
a refused upgrade, a masked server frame, a non-text frame, or a timeout.
"""
import base64
import hashlib
import os
import socket
import sys

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 §1.3


def read_exact(sock, n, buf):
    while len(buf) < n:
        chunk = sock.recv(65536)
        if not chunk:
            sys.exit("ws_frames: connection closed early")
        buf += chunk
    return buf[:n], buf[n:]


def main(host, port, path, count):
    sock = socket.create_connection((host, int(port)), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            sys.exit("ws_frames: no handshake response")
        buf += chunk
    head, buf = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    if " 101 " not in lines[0] + " ":
        sys.exit("ws_frames: upgrade refused: " + lines[0])
    want = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
    headers = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
    if headers.get("sec-websocket-accept") != want:
        sys.exit("ws_frames: wrong Sec-WebSocket-Accept")
    for _ in range(int(count)):
        hdr, buf = read_exact(sock, 2, buf)
        opcode, masked, n = hdr[0] & 0x0F, hdr[1] & 0x80, hdr[1] & 0x7F
        if masked:
            sys.exit("ws_frames: server frame is masked (RFC 6455 §5.1)")
        if n == 126:
            ext, buf = read_exact(sock, 2, buf)
            n = int.from_bytes(ext, "big")
        elif n == 127:
            ext, buf = read_exact(sock, 8, buf)
            n = int.from_bytes(ext, "big")
        payload, buf = read_exact(sock, n, buf)
        if opcode != 1 or not hdr[0] & 0x80:
            sys.exit(f"ws_frames: expected a whole text frame, got opcode {opcode}")
        print(payload.decode("utf-8"), flush=True)
    sock.close()


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    main(*sys.argv[1:])
