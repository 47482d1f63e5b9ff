"""One connection to the sidecar (`peercache node`): the framing and the ops of its socket protocol.

Frame: u32 BE payload length | u8 version (1) | u8 kind (1 request, 2 response, 4 error) |
u32 BE request id | payload. Control ops (hello, register, clear, stats) carry UTF-8 JSON; the hot
ops (exists, get, set) a binary payload: a 32-byte little-endian header, u64 offsets (and lengths
or u32 pools when they differ per key), the keys joined by '\n'; their answer is the op byte and
one '1'/'0' byte per key. Documented in docs/sidecar-protocol.md and src/sidecar/protocol.ts.
A connection is used by one thread at a time (the adapter keeps one per thread); every call has
a deadline, and any failure leaves the connection closed (the caller reconnects).
"""
from __future__ import annotations

import json
import os
import select
import socket
import struct
import sys
import time
from array import array
from typing import Any, Dict, List, Optional, Sequence, Sized, Tuple, Union

from .frames import _HEADER, _TIMEVAL, FRAME_VERSION, KIND_ERROR, KIND_EVENT, KIND_REQUEST, KIND_RESPONSE, MAX_ANSWER_BYTES, SidecarError  # noqa: F401 (re-exported)
from .lane import (  # noqa: F401 (re-exported: the wire spec test and tools read them here)
    _LITTLE_X64, LANE_ANSWER_AT, LANE_ANSWER_BYTES, LANE_ANSWER_ID, LANE_ANSWER_KIND, LANE_ANSWER_LENGTH, LANE_BYTES,
    LANE_CLIENT_POLLS_UNTIL, LANE_MAGIC, LANE_MARGIN_NS, LANE_REQUEST_AT, LANE_REQUEST_BYTES, LANE_REQUEST_ID,
    LANE_REQUEST_LENGTH, LANE_SIDECAR_POLLS_UNTIL, Lane, LaneCalls,
)

PROTOCOL = "peercache-sidecar/2"
Pools = Union[int, List[int]]  # one pool id for every key, or one per key
Lengths = Union[int, List[int]]  # one length for every key, or one per key
# Binary request header: op, flags, 0, count, deadline (Unix ms), key bytes, pool, length.
_BIN = struct.Struct("<BBHIQIIQ")
OP_EXISTS, OP_GET, OP_SET = 0x81, 0x82, 0x83
FLAG_PER_KEY_POOLS, FLAG_PER_KEY_LENGTHS = 1, 2
_LITTLE = sys.byteorder == "little"


class KeyBlob(object):
    """`count` object names already joined by '\\n' and encoded as UTF-8: what the binary ops send
    (the adapter builds it with one join instead of a list of names)."""

    __slots__ = ("count", "blob")

    def __init__(self, count: int, blob: bytes) -> None:
        self.count = count
        self.blob = blob

    def __len__(self) -> int:
        return self.count


def _precise_timers() -> None:
    """This thread's timer slack to 1 µs (Linux allows a thread 50 µs by default): the nap before
    polling ends when asked, not up to 50 µs later. Best effort: nothing happens where prctl is missing."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(29, 1000, 0, 0, 0)  # PR_SET_TIMERSLACK
    except (OSError, AttributeError):
        pass


class SidecarClient(LaneCalls):
    """`poll_us` > 0: hybrid polling for the answers of binary ops. The thread sleeps until about
    `poll_us` before the answer is due (the recent calls of that op and size say when), then polls
    the socket without sleeping until `poll_us` after it, so the answer finds it running instead of
    waking it (a halted vCPU or a deep C-state costs 50-200 µs per wake-up). Late answers are waited
    for as usual. `polled_s` is the time spent polling."""

    def __init__(self, path: str, timeout_s: float = 15.0, poll_us: float = 0) -> None:
        self.path = path
        self.timeout_s = timeout_s
        self.sock: Optional[socket.socket] = None
        self._timeo: Optional[float] = None  # the socket's SO_RCVTIMEO/SO_SNDTIMEO in seconds (_timeouts)
        self.next_id = 1
        self.hello: Optional[Dict[str, Any]] = None
        self._buf = bytearray(65536)
        self.poll_s = poll_us / 1e6
        self.polled_s = 0.0
        self._due: Dict[Tuple[int, int], float] = {}  # (op, size class) -> expected answer time (s)
        self.lane: Optional[Lane] = None  # this connection's Lane, when it has one
        self._pending = b""  # socket bytes read past a lane answer (stale wake-up events)
        self.lane_calls = self.lane_nudges = self.lane_wakeups = 0
        self.last_used = time.monotonic()  # when the last call ended (closed_while_idle looks only after a pause)

    @property
    def connected(self) -> bool:
        return self.sock is not None

    def connect(self) -> Dict[str, Any]:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout_s)
        try:
            s.connect(self.path)
            # Blocking from here on, bounded by SO_RCVTIMEO/SO_SNDTIMEO (_timeouts): a call is one send
            # and one recv, without the poll() and the mode switch a Python socket timeout adds to each.
            s.settimeout(None)
        except BaseException:
            s.close()
            raise
        self.sock = s
        self._timeo = None
        if self.poll_s:
            _precise_timers()
        hello = self.call({"op": "hello", "protocol": PROTOCOL, "pid": os.getpid()})
        if not isinstance(hello, dict) or hello.get("protocol") != PROTOCOL:
            self.close()
            raise SidecarError("the sidecar speaks %r, this adapter %r: upgrade the one that is older" % (
                hello.get("protocol") if isinstance(hello, dict) else None, PROTOCOL), fatal=True)
        self.hello = hello
        self._open_lane()
        return hello

    def closed_while_idle(self) -> bool:
        """Whether the sidecar closed this connection since its last call: it writes nothing between
        calls but a fatal error frame before closing (a full sidecar closes the connection idle longest)
        or a late lane wake-up. One non-blocking peek."""
        if self.sock is None:
            return True
        try:
            head = self.sock.recv(_HEADER.size, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            return True
        return not head or (len(head) == _HEADER.size and _HEADER.unpack(head)[2] == KIND_ERROR)

    def close(self) -> None:
        lane, self.lane, self._pending = self.lane, None, b""
        if lane is not None:
            lane.close()
        s, self.sock = self.sock, None
        if s is not None:
            try:
                s.close()
            except OSError:
                pass

    def _timeouts(self, seconds: float) -> None:
        """Bounds each blocking send and recv by `seconds` (kernel socket timeouts; set only when they change)."""
        seconds = max(0.001, seconds)
        if seconds != self._timeo:
            sock = self.sock
            if sock is None:
                raise ConnectionError("not connected")
            tv = _TIMEVAL.pack(int(seconds), int((seconds % 1.0) * 1e6))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, tv)
            self._timeo = seconds

    def _recv_into(self, view: memoryview) -> int:
        sock = self.sock
        if sock is None:
            raise ConnectionError("not connected")
        try:
            k = sock.recv_into(view)
        except BlockingIOError:  # SO_RCVTIMEO expired
            raise socket.timeout("deadline passed waiting for the sidecar")
        if k == 0:
            raise ConnectionError("the sidecar closed the connection")
        return k

    def _poll_answer(self, view: memoryview, due: float, deadline: float) -> int:
        """Sleeps until `poll_s` before the answer is due, then polls until `poll_s` after it (or the
        deadline); the bytes received, or 0 when the answer is later (the caller waits as usual)."""
        sock = self.sock
        if sock is None:
            raise ConnectionError("not connected")
        start = time.perf_counter()
        left = deadline - time.monotonic()
        nap = min(due - self.poll_s, left)
        if nap > 0.00002:
            ready, _, _ = select.select((sock,), (), (), nap)
            if ready:
                return self._recv_into(view)
        t0 = time.perf_counter()
        end = start + min(due + self.poll_s, left)  # a late due time never outlasts the deadline
        recv, flags = sock.recv_into, socket.MSG_DONTWAIT
        try:
            while True:
                try:
                    k = recv(view, 0, flags)
                except (BlockingIOError, InterruptedError):
                    if time.perf_counter() < end:
                        continue
                    return 0
                if k == 0:
                    raise ConnectionError("the sidecar closed the connection")
                return k
        finally:
            self.polled_s += time.perf_counter() - t0

    def _recv_more(self, view: memoryview, got: int, deadline: float) -> int:
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("deadline passed waiting for the sidecar")
        self._timeouts(left)
        return got + self._recv_into(view[got:])

    def call(self, request: Any, timeout_s: Optional[float] = None) -> Any:
        """Sends one request (a dict, or JSON bytes) and waits for its answer; closes the connection on any failure but a refused request."""
        payload = request if isinstance(request, bytes) else json.dumps(request, separators=(",", ":")).encode()
        return self._call(payload, timeout_s)

    def _call(self, payload: bytes, timeout_s: Optional[float] = None, binary_op: int = 0, count: int = 0) -> Any:
        sock = self.sock
        if sock is None:
            raise ConnectionError("not connected")
        limit = timeout_s if timeout_s is not None else self.timeout_s
        deadline = time.monotonic() + limit
        rid = self.next_id
        self.next_id = (self.next_id % 0x7FFFFFFF) + 1
        try:
            self._timeouts(limit)
            lane = self.lane
            if binary_op and lane is not None and len(payload) <= LANE_REQUEST_BYTES:
                kind, answer_id, body = self._lane_exchange(sock, lane, payload, rid, deadline, binary_op, count)
            else:
                kind, answer_id, body = self._socket_exchange(sock, payload, rid, deadline, limit, binary_op, count)
            if binary_op and kind == KIND_RESPONSE:
                if len(body) < 1 or body[0] != binary_op:
                    raise ConnectionError("malformed binary answer from the sidecar")
                body = bytes(body[1:]).decode("ascii")
            else:
                body = json.loads(bytes(body)) if len(body) else None
        except BaseException:
            self.close()
            raise
        finally:
            self.last_used = time.monotonic()
        if kind == KIND_ERROR:
            fatal = bool(body.get("fatal")) if isinstance(body, dict) else True
            message = body.get("message") if isinstance(body, dict) else "error"
            code = body.get("code") if isinstance(body, dict) else None
            if fatal or answer_id != rid:
                self.close()
            raise SidecarError(str(message), fatal, str(code) if isinstance(code, str) else "ERR_REQUEST_FAILED")
        if answer_id != rid:
            self.close()
            raise ConnectionError("answer %d to request %d" % (answer_id, rid))
        return body

    def _learn_due(self, due_key: Tuple[int, int], due: Optional[float], sent: float) -> None:
        took = time.perf_counter() - sent
        # Falls at once to a faster answer, rises slowly to a slower one: better early than late.
        self._due[due_key] = took if due is None or took < due else 0.875 * due + 0.125 * took

    def _socket_exchange(self, sock: socket.socket, payload: bytes, rid: int, deadline: float, limit: float, binary_op: int, count: int) -> Tuple[int, int, memoryview]:
        """Sends the request frame and reads its answer frame: (kind, id, payload view)."""
        try:
            sock.sendall(_HEADER.pack(len(payload), FRAME_VERSION, KIND_REQUEST, rid) + payload)
        except BlockingIOError:  # SO_SNDTIMEO expired
            raise socket.timeout("deadline passed sending to the sidecar")
        sent = time.perf_counter()
        left = deadline - time.monotonic()
        if left < limit - 0.01:  # the send waited: the answer gets only what is left
            self._timeouts(left)
        # Usually the whole answer comes in one recv; a large one is read on until complete.
        buf = self._buf
        view = memoryview(buf)
        got = 0
        if self._pending:  # bytes a lane call read past its answer: stale wake-up events
            got = len(self._pending)
            view[:got] = self._pending
            self._pending = b""
        due_key = (binary_op, count.bit_length()) if binary_op and self.poll_s else None
        due = self._due.get(due_key) if due_key else None
        if not got:  # (with stale bytes in hand, the loop below reads on after them)
            if due is None:
                got = self._recv_into(view)
            else:  # polled; an answer later than due waits for the rest of the deadline only
                got = self._poll_answer(view, due, deadline) or self._recv_more(view, 0, deadline)
        if due_key:
            self._learn_due(due_key, due, sent)
        while True:
            while got < _HEADER.size:
                got = self._recv_more(view, got, deadline)
            length, version, kind, answer_id = _HEADER.unpack_from(buf)
            if kind != KIND_EVENT or length or version != FRAME_VERSION:
                break
            # A lane's wake-up that came after its answer was taken from the lane: skipped.
            buf[:got - _HEADER.size] = bytes(view[_HEADER.size:got])
            got -= _HEADER.size
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
        return kind, answer_id, view[_HEADER.size:total]

    @staticmethod
    def _keys_blob(keys: Union[KeyBlob, Sequence[str]]) -> bytes:
        """The keys as one UTF-8 blob joined by '\\n' (a key holding a newline cannot be sent)."""
        if isinstance(keys, KeyBlob):
            return keys.blob
        blob = "\n".join(keys).encode()
        if blob.count(b"\n") != len(keys) - 1 and keys:
            raise ValueError("a key contains a newline")
        return blob

    @staticmethod
    def _u64s(values: Sequence[int]) -> bytes:
        """Little-endian u64 bytes of a list (or array('Q')) of ints; OverflowError for one out of range."""
        try:
            a = values if isinstance(values, array) and values.typecode == "Q" else array("Q", values)
        except (OverflowError, TypeError):
            raise ValueError("offsets and lengths must be integers in 0..2^64-1")
        if not _LITTLE:
            a = array("Q", a)
            a.byteswap()
        return a.tobytes()

    # ---------------------------------------------------------------- ops

    def register(self, fd: int, nbytes: int, pid: Optional[int] = None) -> int:
        answer = self.call({"op": "register", "pid": pid or os.getpid(), "fd": fd, "bytes": nbytes})
        pool = answer.get("pool") if isinstance(answer, dict) else None
        if not isinstance(pool, int):
            self.close()
            raise ConnectionError("malformed register answer from the sidecar: %s" % (repr(answer)[:200],))
        return pool

    def _deadline_ms(self) -> int:
        # When this client gives up (the sidecar will not start the request later, nor READ past it).
        return int((time.time() + self.timeout_s) * 1000)

    def exists(self, keys: Union[KeyBlob, Sequence[str]]) -> str:
        """One '1'/'0' character per key."""
        blob = self._keys_blob(keys)
        return self._answer(self._call(_BIN.pack(OP_EXISTS, 0, 0, len(keys), self._deadline_ms(), len(blob), 0, 0) + blob, binary_op=OP_EXISTS, count=len(keys)), keys)

    def _answer(self, bits: Any, keys: Sized) -> str:
        """A binary op's answer (_call decoded it to one '1'/'0' character per key), checked against the keys asked."""
        if not isinstance(bits, str) or len(bits) != len(keys):
            self.close()
            raise ConnectionError("the sidecar answered %s entries for %d keys" % (len(bits) if isinstance(bits, str) else "no", len(keys)))
        return bits

    def _io(self, op: int, pool: Pools, keys: Union[KeyBlob, Sequence[str]], offsets: Sequence[int], lengths: Lengths) -> str:
        n = len(keys)
        if len(offsets) != n:
            raise ValueError("%d offsets for %d keys" % (len(offsets), n))
        flags, parts = 0, [b"", self._u64s(offsets)]  # parts[0]: the header, packed once flags are known
        if isinstance(lengths, int):
            length = lengths
        else:
            if len(lengths) != n:
                raise ValueError("%d lengths for %d keys" % (len(lengths), n))
            flags, length = FLAG_PER_KEY_LENGTHS, 0
            parts.append(self._u64s(lengths))
        if isinstance(pool, int):
            pool_id = pool
        else:
            if len(pool) != n:
                raise ValueError("%d pools for %d keys" % (len(pool), n))
            flags, pool_id = flags | FLAG_PER_KEY_POOLS, 0
            pools = array("I", pool)
            if not _LITTLE:
                pools.byteswap()
            parts.append(pools.tobytes())
        blob = self._keys_blob(keys)
        parts.append(blob)
        parts[0] = _BIN.pack(op, flags, 0, n, self._deadline_ms(), len(blob), pool_id, length)
        return self._answer(self._call(b"".join(parts), binary_op=op, count=n), keys)

    def get(self, pool: Pools, keys: Union[KeyBlob, Sequence[str]], offsets: Sequence[int], lengths: Lengths) -> str:
        """`lengths` is a list, or one int for every key."""
        return self._io(OP_GET, pool, keys, offsets, lengths)

    def set(self, pool: Pools, keys: Union[KeyBlob, Sequence[str]], offsets: Sequence[int], lengths: Lengths) -> str:
        return self._io(OP_SET, pool, keys, offsets, lengths)

    def clear(self) -> None:
        self.call({"op": "clear"})

    def stats(self) -> Dict[str, Any]:
        answer = self.call({"op": "stats"})
        if not isinstance(answer, dict):
            self.close()
            raise ConnectionError("malformed stats answer from the sidecar")
        return answer
