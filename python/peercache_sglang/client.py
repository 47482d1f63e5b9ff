"""One connection to the sidecar (`peercache node`): the framing and the ops of its socket protocol.

Frame: u32 BE payload length | u8 version (1) | u8 kind (1 request, 2 response, 4 error) |
u32 BE request id | UTF-8 JSON payload. Documented in the README ("Socket protocol").
A connection is used by one thread at a time (the adapter keeps one per thread); every call has
a deadline, and any failure leaves the connection closed (the caller reconnects).
"""
import json
import os
import re
import socket
import struct
import time

PROTOCOL = "peercache-sidecar/1"
FRAME_VERSION = 1
KIND_REQUEST, KIND_RESPONSE, KIND_ERROR = 1, 2, 4
_HEADER = struct.Struct(">IBBI")
MAX_ANSWER_BYTES = 64 * 1024 * 1024
# Keys made only of these characters need no JSON escaping: the hot ops join them directly (the
# quotes are the separators; their count proves no key has one of its own).
_PLAIN_JOINED = re.compile(r'^[A-Za-z0-9_.:/+=,"-]*$')


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
        self._buf = bytearray(65536)

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

    def _recv_more(self, view, got, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("deadline passed waiting for the sidecar")
        self.sock.settimeout(left)
        k = self.sock.recv_into(view[got:])
        if k == 0:
            raise ConnectionError("the sidecar closed the connection")
        return got + k

    def call(self, request, timeout_s=None):
        """Sends one request (a dict, or JSON bytes) and waits for its answer; closes the connection on any failure but a refused request."""
        payload = request if isinstance(request, bytes) else json.dumps(request, separators=(",", ":")).encode()
        return self._call(payload, timeout_s)

    def _call(self, payload, timeout_s=None):
        if self.sock is None:
            raise ConnectionError("not connected")
        deadline = time.monotonic() + (timeout_s if timeout_s is not None else self.timeout_s)
        rid = self.next_id
        self.next_id = (self.next_id % 0x7FFFFFFF) + 1
        try:
            self.sock.settimeout(max(0.001, deadline - time.monotonic()))
            self.sock.sendall(_HEADER.pack(len(payload), FRAME_VERSION, KIND_REQUEST, rid) + payload)
            # Usually the whole answer comes in one recv; a large one is read on until complete.
            buf = self._buf
            view = memoryview(buf)
            got = self.sock.recv_into(view)
            if got == 0:
                raise ConnectionError("the sidecar closed the connection")
            while got < _HEADER.size:
                got = self._recv_more(view, got, deadline)
            length, version, kind, answer_id = _HEADER.unpack_from(buf)
            if version != FRAME_VERSION or kind not in (KIND_RESPONSE, KIND_ERROR) or length > MAX_ANSWER_BYTES:
                raise ConnectionError("malformed answer from the sidecar (version %d, kind %d, %d bytes)" % (version, kind, length))
            total = _HEADER.size + length
            if total > len(buf):
                big = bytearray(total)
                big[:got] = view[:got]
                view.release()
                buf, view = big, memoryview(big)
            while got < total:
                got = self._recv_more(view, got, deadline)
            if got > total:
                raise ConnectionError("the sidecar sent more than one answer")
            body = json.loads(bytes(view[_HEADER.size:total])) if length else None
            view.release()
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

    @staticmethod
    def _keys_json(keys):
        if not keys:
            return "[]"
        joined = '","'.join(keys)
        if joined.count('"') == 2 * (len(keys) - 1) and _PLAIN_JOINED.match(joined):
            return '["' + joined + '"]'
        return json.dumps(keys)

    @staticmethod
    def _ints_json(values):
        if isinstance(values, int):
            return str(values)
        return "[" + ",".join(map(str, values)) + "]"

    # ---------------------------------------------------------------- ops

    def register(self, fd, nbytes, pid=None):
        return self.call({"op": "register", "pid": pid or os.getpid(), "fd": fd, "bytes": nbytes})["pool"]

    def _deadline_ms(self):
        # When this client gives up (the sidecar will not start the request later, nor READ past it).
        return int((time.time() + self.timeout_s) * 1000)

    def exists(self, keys):
        return self._call(('{"op":"exists","keys":%s,"deadline":%d}' % (self._keys_json(keys), self._deadline_ms())).encode())["found"]

    def _io(self, op, pool, keys, offsets, lengths):
        payload = '{"op":"%s","pool":%s,"keys":%s,"offsets":%s,"lengths":%s,"deadline":%d}' % (
            op, self._ints_json(pool), self._keys_json(keys), self._ints_json(offsets), self._ints_json(lengths), self._deadline_ms())
        return self._call(payload.encode())["ok"]

    def get(self, pool, keys, offsets, lengths):
        """`lengths` is a list, or one int for every key."""
        return self._io("get", pool, keys, offsets, lengths)

    def set(self, pool, keys, offsets, lengths):
        return self._io("set", pool, keys, offsets, lengths)

    def clear(self):
        self.call({"op": "clear"})

    def stats(self):
        return self.call({"op": "stats"})
