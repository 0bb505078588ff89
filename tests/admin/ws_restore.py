#!/usr/bin/env python3
"""Checks that litepush-ws notices a restored log (standard library only).

    ws_restore.py HOST PORT DB BACKUP MODE      MODE: rename | in-place

Connects to /ws?channel=c&lastEventId=0, reads the rows there, restores
BACKUP over DB (by renaming a copy over it, or with sqlite3's .restore),
then expects a close frame with code 1012, and after reconnecting with the
last id seen, a litepush.reset (ahead-of-log) first. Prints one summary line.
"""
import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import sys


def connect(host, port, path):
    sock = socket.create_connection((host, int(port)), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += sock.recv(4096)
    return sock, buf.split(b"\r\n\r\n", 1)[1]


def frame(sock, buf):
    """Returns (opcode, payload, rest of buf) for the next server frame."""
    while True:
        if len(buf) >= 2:
            n, off = buf[1] & 0x7F, 2
            if n == 126 and len(buf) >= 4:
                n, off = struct.unpack("!H", buf[2:4])[0], 4
            elif n == 127 and len(buf) >= 10:
                n, off = struct.unpack("!Q", buf[2:10])[0], 10
            if n < 126 or off > 2:
                if len(buf) >= off + n:
                    return buf[0] & 0x0F, buf[off:off + n], buf[off + n:]
        chunk = sock.recv(65536)
        if not chunk:
            sys.exit("connection closed without a close frame")
        buf += chunk


def main(host, port, db, backup, mode):
    sock, buf = connect(host, port, "/ws?channel=c&lastEventId=0")
    expected = int(subprocess.check_output(["sqlite3", db, "SELECT count(*) FROM messages WHERE channel='c'"]))
    last = 0
    for _ in range(expected):
        op, payload, buf = frame(sock, buf)
        last = json.loads(payload)["id"]
    if mode == "rename":
        shutil.copy(backup, db + ".new")
        os.rename(db + ".new", db)
    else:
        subprocess.check_call(["sqlite3", db, f".restore {backup}"])
    op, payload, buf = frame(sock, buf)
    code = struct.unpack("!H", payload[:2])[0] if op == 8 and len(payload) >= 2 else None
    sock, buf = connect(host, port, f"/ws?channel=c&lastEventId={last}")
    op2, payload2, buf = frame(sock, buf)
    first = json.loads(payload2)
    print(op, code, first["event"], json.loads(first["data"])["reason"])


if __name__ == "__main__":
    main(*sys.argv[1:6])
