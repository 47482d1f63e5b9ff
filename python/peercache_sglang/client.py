"""One connection to the sidecar (`peercache node`): the framing and the ops of its socket protocol.

Frame: u32 BE payload length | u8 version (1) | u8 kind (1 request, 2 response, 4 error) |
u32 BE request id | UTF-8 JSON payload. Documented in the README ("Socket protocol").
A connection is used by one thread at a time (the adapter keeps one per thread); every call has
a deadline, and any failure leaves the connection closed (the caller reconnects).
"""
import json
import os
import socket
import struct
import time

PROTOCOL = "peercache-sidecar/1"
FRAME_VERSION = 1
KIND_REQUEST, KIND_RESPONSE, KIND_ERROR = 1, 2, 4
_HEADER = struct.Struct(">IBBI")
MAX_ANSWER_BYTES = 64 * 1024 * 1024


class SidecarError(Exception):
    """The sidecar refused a request (bad input); the connection stays usable unless `fatal`."""

    def __init__(self, message, fatal=False):
        super().__init__(message)
        self.fatal = fatal


class SidecarClient:
    def __init__(self, path, timeout_s=15.0):
        self.path = path
        self.timeout_s = timeout_s
        self.sock = None
        self.next_id = 1
        self.hello = None

    @property
    def connected(self):
        return self.sock is not None

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout_s)
        try:
            s.connect(self.path)
        except BaseException:
            s.close()
            raise
        self.sock = s
        self.hello = self.call({"op": "hello", "protocol": PROTOCOL, "pid": os.getpid()})
        return self.hello

    def close(self):
        s, self.sock = self.sock, None
        if s is not None:
            try:
                s.close()
            except OSError:
                pass

    def _recv_exact(self, n, deadline):
        buf = bytearray(n)
        view = memoryview(buf)
        got = 0
        while got < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("deadline passed waiting for the sidecar")
            self.sock.settimeout(left)
            k = self.sock.recv_into(view[got:], n - got)
            if k == 0:
                raise ConnectionError("the sidecar closed the connection")
            got += k
        return buf

    def call(self, request, timeout_s=None):
        """Sends one request and waits for its answer; closes the connection on any failure but a refused request."""
        if self.sock is None:
            raise ConnectionError("not connected")
        deadline = time.monotonic() + (timeout_s if timeout_s is not None else self.timeout_s)
        rid = self.next_id
        self.next_id = (self.next_id % 0x7FFFFFFF) + 1
        payload = json.dumps(request, separators=(",", ":")).encode()
        try:
            self.sock.settimeout(max(0.001, deadline - time.monotonic()))
            self.sock.sendall(_HEADER.pack(len(payload), FRAME_VERSION, KIND_REQUEST, rid) + payload)
            head = self._recv_exact(_HEADER.size, deadline)
            length, version, kind, answer_id = _HEADER.unpack(head)
            if version != FRAME_VERSION or kind not in (KIND_RESPONSE, KIND_ERROR) or length > MAX_ANSWER_BYTES:
                raise ConnectionError("malformed answer from the sidecar (version %d, kind %d, %d bytes)" % (version, kind, length))
            body = json.loads(bytes(self._recv_exact(length, deadline)).decode()) if length else None
        except BaseException:
            self.close()
            raise
        if kind == KIND_ERROR:
            fatal = bool(body.get("fatal")) if isinstance(body, dict) else True
            message = body.get("message") if isinstance(body, dict) else "error"
            if fatal or answer_id != rid:
                self.close()
            raise SidecarError(str(message), fatal)
        if answer_id != rid:
            self.close()
            raise ConnectionError("answer %d to request %d" % (answer_id, rid))
        return body

    # ---------------------------------------------------------------- ops

    def register(self, fd, nbytes, pid=None):
        return self.call({"op": "register", "pid": pid or os.getpid(), "fd": fd, "bytes": nbytes})["pool"]

    def exists(self, keys):
        return self.call({"op": "exists", "keys": keys})["found"]

    def get(self, pool, keys, offsets, lengths):
        return self.call({"op": "get", "pool": pool, "keys": keys, "offsets": offsets, "lengths": lengths})["ok"]

    def set(self, pool, keys, offsets, lengths):
        return self.call({"op": "set", "pool": pool, "keys": keys, "offsets": offsets, "lengths": lengths})["ok"]

    def clear(self):
        self.call({"op": "clear"})

    def stats(self):
        return self.call({"op": "stats"})
