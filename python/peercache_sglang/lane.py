"""The lane: a shared-memory page per connection that carries binary requests and their answers
while both ends poll (src/sidecar/lane.ts explains the layout); the socket carries only wake-up
events then. Offered by x86-64 sidecars only; without one the socket carries every call."""
from __future__ import annotations

import mmap
import os
import select
import socket
import struct
import sys
import time
from typing import Any, Dict, Literal, Optional, Tuple, Union

from .frames import _HEADER, FRAME_VERSION, KIND_ERROR, KIND_EVENT, KIND_RESPONSE, MAX_ANSWER_BYTES, SidecarError

_LITTLE = sys.byteorder == "little"
# The lane's layout (src/sidecar/lane.ts; schema/sidecar-wire.json checks it).
LANE_MAGIC = 0x314C4350
LANE_REQUEST_ID, LANE_REQUEST_LENGTH = 64, 68
LANE_CLIENT_POLLS_UNTIL, LANE_SIDECAR_POLLS_UNTIL = 128, 192
LANE_ANSWER_ID, LANE_ANSWER_LENGTH, LANE_ANSWER_KIND = 256, 260, 264
LANE_REQUEST_AT, LANE_REQUEST_BYTES = 4096, 64 * 1024
LANE_ANSWER_AT, LANE_ANSWER_BYTES = LANE_REQUEST_AT + LANE_REQUEST_BYTES, 8 * 1024
LANE_BYTES = LANE_ANSWER_AT + LANE_ANSWER_BYTES
LANE_MARGIN_NS = 50000
_LITTLE_X64 = _LITTLE and struct.calcsize("@I") == 4 and struct.calcsize("@Q") == 8


class Lane(object):
    """A lane's mapping, with its control fields as u32/u64 arrays: each read or write is one aligned
    access (memoryview items are copied whole; struct.pack_into clears the bytes first and writes
    them one by one, which the sidecar could see half-done)."""

    __slots__ = ("mm", "u32", "u64")

    def __init__(self, mm: mmap.mmap) -> None:
        self.mm = mm
        self.u32 = memoryview(mm).cast("I")
        self.u64 = memoryview(mm).cast("Q")
        self.u32[0] = LANE_MAGIC

    def close(self) -> None:
        self.u32.release()
        self.u64.release()
        self.mm.close()


Framed = Tuple[int, int, Any]  # (kind, request id, payload) of an answer
Woken = Union[None, Literal[True], Framed]  # _lane_events: nothing in time, the event for the call, or an answer frame


class LaneCalls(object):
    """The lane part of SidecarClient (its state is set in SidecarClient.__init__)."""

    sock: Optional[socket.socket]
    hello: Optional[Dict[str, Any]]
    poll_s: float
    polled_s: float
    lane: Optional[Lane]
    _pending: bytes
    _due: Dict[Tuple[int, int], float]
    lane_calls: int
    lane_nudges: int
    lane_wakeups: int

    def call(self, request: Any, timeout_s: Optional[float] = None) -> Any:
        raise NotImplementedError

    def _timeouts(self, seconds: float) -> None:
        raise NotImplementedError

    def _learn_due(self, due_key: Tuple[int, int], due: Optional[float], sent: float) -> None:
        raise NotImplementedError

    def _open_lane(self) -> None:
        """A lane (src/sidecar/lane.ts) for this connection's binary calls, when both ends poll and the
        sidecar offers lanes; without one (no memfd, the sidecar refuses) the socket carries them."""
        if not (self.poll_s and self.hello and self.hello.get("lanes") and _LITTLE_X64 and hasattr(os, "memfd_create")):
            return
        fd = os.memfd_create("peercache-lane", getattr(os, "MFD_CLOEXEC", 1))
        try:
            os.ftruncate(fd, LANE_BYTES)
            lane = Lane(mmap.mmap(fd, LANE_BYTES))
            try:
                self.call({"op": "lane", "pid": os.getpid(), "fd": fd, "bytes": LANE_BYTES})
            except SidecarError:
                lane.close()
                return
            self.lane = lane
        finally:
            os.close(fd)

    def _lane_exchange(self, sock: socket.socket, lane: Lane, payload: bytes, rid: int, deadline: float, binary_op: int, count: int) -> Framed:
        """Puts the request in the lane (an event frame only if the sidecar is not polling) and waits
        for the answer there: (kind, id, payload)."""
        n = len(payload)
        lane.mm[LANE_REQUEST_AT:LANE_REQUEST_AT + n] = payload
        u32 = lane.u32
        u32[LANE_REQUEST_LENGTH // 4] = n
        u32[LANE_REQUEST_ID // 4] = rid  # last: the sidecar takes the request when the id changes
        sent = time.perf_counter()
        self.lane_calls += 1
        if time.monotonic_ns() + LANE_MARGIN_NS >= lane.u64[LANE_SIDECAR_POLLS_UNTIL // 8]:
            self.lane_nudges += 1
            try:
                sock.sendall(_HEADER.pack(0, FRAME_VERSION, KIND_EVENT, rid))
            except BlockingIOError:
                raise socket.timeout("deadline passed sending to the sidecar")
        due_key = (binary_op, count.bit_length())
        due = self._due.get(due_key)
        framed = self._lane_wait(sock, lane, rid, sent, due, deadline)
        self._learn_due(due_key, due, sent)
        if framed is not None:
            return framed
        kind, length = lane.mm[LANE_ANSWER_KIND], u32[LANE_ANSWER_LENGTH // 4]
        if kind not in (KIND_RESPONSE, KIND_ERROR) or length > LANE_ANSWER_BYTES:
            raise ConnectionError("malformed lane answer from the sidecar (kind %d, %d bytes)" % (kind, length))
        return kind, rid, lane.mm[LANE_ANSWER_AT:LANE_ANSWER_AT + length]

    def _lane_wait(self, sock: socket.socket, lane: Lane, rid: int, sent: float, due: Optional[float], deadline: float) -> Optional[Framed]:
        """Waits for the answer to `rid`: None once it is in the lane, or (kind, id, payload) of an
        answer that came as a frame. Like _poll_answer: naps until `poll_s` before it is due (woken
        early by an event), then polls the lane, telling the sidecar until when; then blocks on the
        socket for the event, until the deadline."""
        u32, answer_at = lane.u32, LANE_ANSWER_ID // 4
        left = deadline - time.monotonic()
        if due is not None:
            nap = min(due - self.poll_s - (time.perf_counter() - sent), left)
            if nap > 0.00002:
                framed = self._lane_events(sock, rid, nap, block=False)
                if framed is not None:
                    return None if framed is True else framed
        # One clock (CLOCK_MONOTONIC, the sidecar's too) both for what the lane says and for when the
        # polling stops: the answer of a sidecar that saw the window open is in the lane by its end.
        now = time.monotonic_ns()
        left = deadline - time.monotonic()
        end = now + int(min((due or 0.0) + self.poll_s - (time.perf_counter() - sent), left) * 1e9)
        if end > now:
            u64, until_at, clock = lane.u64, LANE_CLIENT_POLLS_UNTIL // 8, time.monotonic_ns
            u64[until_at] = end
            try:
                while u32[answer_at] != rid:
                    if clock() >= end:
                        break
                else:
                    return None
            finally:
                u64[until_at] = 0
                self.polled_s += (time.monotonic_ns() - now) / 1e9
        # The sidecar judged by the window's end whether to send an event: look once more after it.
        if u32[answer_at] == rid:
            return None
        framed = self._lane_events(sock, rid, deadline - time.monotonic(), block=True)
        return None if framed is True else framed

    def _lane_events(self, sock: socket.socket, rid: int, timeout: float, block: bool) -> Woken:
        """Reads frames from the socket for up to `timeout` s: True on the event for `rid`, (kind, id,
        payload) for an answer frame, None when nothing came in time (block=False); stale events are
        skipped. block=True waits until the deadline (socket.timeout after it)."""
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if block:
                if left <= 0:
                    raise socket.timeout("deadline passed waiting for the sidecar")
                self._timeouts(left)
                try:
                    data = sock.recv(65536)
                except BlockingIOError:  # SO_RCVTIMEO expired
                    raise socket.timeout("deadline passed waiting for the sidecar")
            else:
                if left <= 0 or not select.select((sock,), (), (), left)[0]:
                    return None
                data = sock.recv(65536)
            if not data:
                raise ConnectionError("the sidecar closed the connection")
            buf, result = self._pending + data, None  # type: Tuple[bytes, Woken]
            while len(buf) >= _HEADER.size:
                length, version, kind, frame_id = _HEADER.unpack_from(buf)
                if version != FRAME_VERSION or length > MAX_ANSWER_BYTES:
                    raise ConnectionError("malformed frame from the sidecar (version %d, %d bytes)" % (version, length))
                if len(buf) < _HEADER.size + length:
                    break
                body, buf = buf[_HEADER.size:_HEADER.size + length], buf[_HEADER.size + length:]
                if kind == KIND_EVENT:
                    if frame_id == rid:
                        self.lane_wakeups += 1
                        result = True
                elif kind in (KIND_RESPONSE, KIND_ERROR):
                    result = (kind, frame_id, body)
                else:
                    raise ConnectionError("unexpected frame kind %d from the sidecar" % kind)
            self._pending = buf
            if result is not None:
                return result
