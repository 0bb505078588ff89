"""A raw-socket WebSocket client for the integration tests (ws_cases.py):
the handshake written by hand, frames built bit by bit (the client masks
them itself, or not, on purpose), and a frame reader that keeps every
server frame in order. Standard library only."""
import base64
import hashlib
import os
import select
import socket
import struct
import time
import zlib

from harness import Fail, check, short

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BIN, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


def accept_for(key):
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


def frame(opcode, payload=b"", fin=True, rsv=0, mask=True, length=None):
    """One client frame. rsv: bits 0b100 (RSV1), 0b010 (RSV2), 0b001 (RSV3).
    length overrides the encoded payload length form (not the bytes)."""
    if isinstance(payload, str):
        payload = payload.encode()
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    mbit = 0x80 if mask else 0
    if n < 126:
        head = bytes([b0, mbit | n])
    elif n < 65536:
        head = bytes([b0, mbit | 126]) + struct.pack(">H", n)
    else:
        head = bytes([b0, mbit | 127]) + struct.pack(">Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i & 3] for i, b in enumerate(payload))


def close_payload(code, reason=b""):
    return struct.pack(">H", code) + reason


def deflate_message(data):
    """permessage-deflate body of one message (RFC 7692 §7.2.1)."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    check(out.endswith(b"\x00\x00\xff\xff"), "deflate tail")
    return out[:-4]


class Frame:
    def __init__(self, fin, rsv, opcode, payload, masked):
        self.fin, self.rsv, self.opcode, self.payload, self.masked = fin, rsv, opcode, payload, masked

    def close_code(self):
        if len(self.payload) >= 2:
            return struct.unpack(">H", self.payload[:2])[0]
        return None

    def __repr__(self):
        return f"Frame(op={self.opcode}, fin={self.fin}, rsv={self.rsv}, {short(self.payload, 120)})"


class RawWS:
    """GET path on 127.0.0.1:port. With handshake=True (default) the request
    is a valid upgrade plus `headers` (a header set to None is left out);
    raw= sends those exact bytes instead. After connect(): status, headers,
    body (for refusals), key."""

    def __init__(self, port, path, headers=None, raw=None, timeout=5.0, source=None):
        self.port, self.path = port, path
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        self.buf = b""
        self.eof = False
        self.status = None
        self.headers = {}
        self.body = b""
        self.pings = []
        self.pongs = []
        self.key = base64.b64encode(os.urandom(16)).decode()
        if raw is None:
            h = {"Host": f"127.0.0.1:{port}", "Upgrade": "websocket", "Connection": "Upgrade",
                 "Sec-WebSocket-Key": self.key, "Sec-WebSocket-Version": "13"}
            for k, v in (headers or {}).items():
                h[k] = v
            raw = f"GET {path} HTTP/1.1\r\n" + "".join(
                f"{k}: {v}\r\n" for k, v in h.items() if v is not None) + "\r\n"
        if isinstance(raw, str):
            raw = raw.encode("latin-1")
        self.sock.sendall(raw)

    # -- reading
    def _recv(self, timeout):
        if self.eof:
            return False
        r, _, _ = select.select([self.sock], [], [], max(0.0, timeout))
        if not r:
            return False
        try:
            d = self.sock.recv(65536)
        except (ConnectionResetError, OSError):
            d = b""
        if not d:
            self.eof = True
            return False
        self.buf += d
        return True

    def read_head(self, timeout=5.0):
        end = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.buf:
            if self.eof:
                raise Fail(f"connection closed before a response head; got {short(self.buf)}")
            if time.monotonic() >= end:
                raise Fail(f"no response head in {timeout:g}s; got {short(self.buf)}")
            self._recv(end - time.monotonic())
        i = self.buf.find(b"\r\n\r\n")
        head, self.buf = self.buf[:i].decode("latin-1"), self.buf[i + 4:]
        lines = head.split("\r\n")
        parts = lines[0].split(" ", 2)
        check(len(parts) >= 2 and parts[0].startswith("HTTP/1.") and parts[1].isdigit(),
              f"bad status line {lines[0]!r}")
        self.status = int(parts[1])
        self.headers = {}
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            k = k.strip().lower()
            self.headers[k] = (self.headers[k] + ", " if k in self.headers else "") + v.strip()
        return self.status

    def read_body(self, timeout=5.0):
        """The body of a refusal: Content-Length bytes, or up to EOF."""
        n = int(self.headers.get("content-length", "-1"))
        end = time.monotonic() + timeout
        while (n < 0 or len(self.buf) < n) and not self.eof and time.monotonic() < end:
            self._recv(end - time.monotonic())
        self.body = self.buf if n < 0 else self.buf[:n]
        return self.body

    def open(self, timeout=5.0):
        """Reads the head and checks it is a valid 101 for our key."""
        self.read_head(timeout)
        if self.status != 101:
            self.read_body(1.0)
        check(self.status == 101, f"expected 101, got {self.status} {self.headers} {short(self.body)}")
        check(self.headers.get("sec-websocket-accept") == accept_for(self.key),
              f"Sec-WebSocket-Accept: expected {accept_for(self.key)}, got {self.headers}")
        return self

    def recv_frame(self, timeout=5.0, skip_pings=True):
        """The next server frame (pings are kept in self.pings and skipped,
        unanswered); None at end of stream; Fail on timeout."""
        end = time.monotonic() + timeout
        while True:
            f = self._parse()
            if f is not None:
                if skip_pings and f.opcode == OP_PING:
                    self.pings.append(f.payload)
                    continue
                return f
            if self.eof:
                return None
            left = end - time.monotonic()
            if left <= 0:
                raise Fail(f"no frame from the server in {timeout:g}s (buffered {short(self.buf)})")
            self._recv(left)

    def _parse(self):
        b = self.buf
        if len(b) < 2:
            return None
        fin, rsv, op = bool(b[0] & 0x80), (b[0] >> 4) & 7, b[0] & 15
        masked, n, i = bool(b[1] & 0x80), b[1] & 127, 2
        if n == 126:
            if len(b) < 4:
                return None
            n, i = struct.unpack(">H", b[2:4])[0], 4
        elif n == 127:
            if len(b) < 10:
                return None
            n, i = struct.unpack(">Q", b[2:10])[0], 10
        key = b""
        if masked:
            if len(b) < i + 4:
                return None
            key, i = b[i:i + 4], i + 4
        if len(b) < i + n:
            return None
        payload = b[i:i + n]
        if masked:
            payload = bytes(x ^ key[j & 3] for j, x in enumerate(payload))
        self.buf = b[i + n:]
        return Frame(fin, rsv, op, payload, masked)

    def recv_data(self, timeout=5.0):
        """The next data frame's payload (inflated when RSV1 is set); a close
        frame or the end of stream is a failure; pongs are kept in self.pongs."""
        end = time.monotonic() + timeout
        f = self.recv_frame(timeout)
        while f is not None and f.opcode == OP_PONG:
            self.pongs.append(f.payload)
            f = self.recv_frame(max(0.0, end - time.monotonic()))
        check(f is not None, "connection ended while waiting for a data frame")
        check(f.opcode in (OP_TEXT, OP_BIN), f"expected a data frame, got {f}")
        check(not f.masked, f"server frames must not be masked: {f}")
        if f.rsv & 4:
            return zlib.decompressobj(-15).decompress(f.payload + b"\x00\x00\xff\xff")
        return f.payload

    def expect_close(self, timeout=5.0):
        """Reads until a close frame; returns (close frame, data frames before it)."""
        before = []
        end = time.monotonic() + timeout
        while True:
            f = self.recv_frame(max(0.0, end - time.monotonic()))
            if f is None:
                raise Fail(f"TCP closed without a close frame (frames before: {short(before)})")
            if f.opcode == OP_CLOSE:
                return f, before
            before.append(f)

    def drain_to_eof(self, timeout=5.0):
        """Everything the server still sends until it closes the TCP
        connection (should be nothing after its close frame)."""
        end = time.monotonic() + timeout
        while not self.eof:
            left = end - time.monotonic()
            if left <= 0:
                raise Fail(f"connection still open {timeout:g}s after the close frame")
            self._recv(left)
        rest, self.buf = self.buf, b""
        return rest

    # -- writing
    def send(self, data):
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError) as e:
            raise Fail(f"send failed: {e}")

    def send_frame(self, *a, **kw):
        self.send(frame(*a, **kw))

    def ping_pong(self, payload=b"are-you-there", timeout=5.0):
        """Sends a ping and waits for the pong with the same payload (data
        frames that arrive first are kept in the returned list)."""
        self.send_frame(OP_PING, payload)
        seen = []
        end = time.monotonic() + timeout
        while True:
            f = self.recv_frame(max(0.0, end - time.monotonic()))
            check(f is not None, f"connection ended waiting for the pong; frames {short(seen)}")
            if f.opcode == OP_PONG:
                check(f.payload == payload, f"pong payload: expected {payload!r}, got {f.payload!r}")
                return seen
            check(f.opcode != OP_CLOSE, f"close frame instead of the pong: {f} (code {f.close_code()})")
            seen.append(f)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
