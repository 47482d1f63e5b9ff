"""Connections to the sidecar: one per thread (Conn: the client, the pool files registered on it,
its staging memfd), made on first use and after a failure (not before retry_s), and the guard every
SGLang call runs under: any failure is logged (at most once per 10 s per reason) and gives a miss."""
from __future__ import annotations

import ctypes
import logging
import socket
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple, TypeVar

from .client import KeyBlob, SidecarClient
from .frames import SidecarError
from .config import AdapterConfig
from .errors import BadInput
from .pools import Staging

logger = logging.getLogger("peercache_sglang")

STAGING_MIN_BYTES = 16 * 1024 * 1024
# A connection unused this long is checked for having been closed by the sidecar before it is used (one peek).
IDLE_CHECK_S = 1.0

T = TypeVar("T")
# One object as it lies in this process: its (address, bytes) ranges, in order (one range, or one
# per layer for MLA layer_first and DeepSeek-V4's multi-buffer pools). Staged, it is one range.
Ranges = List[Tuple[int, int]]


def _packed(objects: Sequence[Ranges]) -> Tuple[List[int], List[int]]:
    """(offsets, sizes) of the objects packed one after another in the staging memfd."""
    offsets, sizes, o = [], [], 0
    for ranges in objects:
        n = sum(nb for _, nb in ranges)
        offsets.append(o)
        sizes.append(n)
        o += n
    return offsets, sizes


class Conn(object):
    """One thread's connection, with the pool files registered on it and its staging memfd."""

    def __init__(self, client: SidecarClient) -> None:
        self.client = client
        self.file_pools: Dict[int, int] = {}  # inode -> pool id
        self.staging: Optional[Staging] = None
        self.staging_pool: Optional[int] = None

    def close(self) -> None:
        self.client.close()
        if self.staging is not None:
            self.staging.close()
            self.staging = None


class Connections(object):
    """The connection and guard part of PeerCacheStorage (its state is set in PeerCacheStorage.__init__)."""

    adapter_config: AdapterConfig
    socket_path: str
    timeout_s: float
    connect_timeout_s: float
    retry_s: float
    poll_us: float
    unusable: Optional[str]
    zero_copy: bool
    files: Dict[int, Tuple[int, int]]
    slot_bytes: int
    _local: threading.local
    _conns: Set[Conn]
    _lock: threading.Lock
    _next_connect: float
    _closed: bool
    _logged: Dict[str, float]
    _counters: Dict[str, Any]

    def _log(self, level: int, key: str, message: str) -> None:
        """Logs a reason at most once per 10 s per key (a bad batch every millisecond must not flood)."""
        now = time.monotonic()
        with self._lock:
            last = self._logged.get(key)
            if last is not None and now - last < 10.0:
                return
            self._logged[key] = now
        logger.log(level, "peercache: %s", message)

    def _count(self, **inc: Any) -> None:
        with self._lock:
            for k, v in inc.items():
                self._counters[k] += v

    def _conn(self) -> Conn:
        """This thread's connection (connected, pool registered), or None while the sidecar is unreachable."""
        if self._closed:
            raise ConnectionError("the backend is closed")
        c: Optional[Conn] = getattr(self._local, "conn", None)
        now = time.monotonic()
        # After a pause, a connection the sidecar closed meanwhile (a full sidecar closes the one idle
        # longest) is replaced now instead of failing this call.
        if c is not None and c.client.connected and (now - c.client.last_used < IDLE_CHECK_S or not c.client.closed_while_idle()):
            if self.zero_copy and len(c.file_pools) < len(self.files):
                self._register_files(c)
            return c
        if now < self._next_connect:
            raise ConnectionError("the sidecar at %s is unreachable (retrying)" % self.socket_path)
        if c is not None:
            c.close()
            with self._lock:
                self._conns.discard(c)
                self._add_client_counters(self._counters, c.client)
            self._count(reconnects=1)
        client = SidecarClient(self.socket_path, self.connect_timeout_s, self.poll_us)
        try:
            hello = client.connect()
        except (OSError, SidecarError) as e:
            client.close()
            self._next_connect = time.monotonic() + self.retry_s
            self._count(connect_failures=1)
            raise ConnectionError("cannot reach the sidecar at %s: %s" % (self.socket_path, e))
        client.timeout_s = self.timeout_s
        self.slot_bytes = int(hello.get("slotBytes", 0))
        c = Conn(client)
        self._local.conn = c
        with self._lock:
            self._conns.add(c)
        if self.zero_copy:
            self._register_files(c)
        return c

    def _register_files(self, c: Conn) -> None:
        for inode, (fd, nbytes) in self.files.items():
            if inode not in c.file_pools:
                c.file_pools[inode] = c.client.register(fd, nbytes)

    def _staging(self, c: Conn, nbytes: int) -> Tuple[Staging, int]:
        """This connection's staging memfd (at least `nbytes`) and its pool id at the sidecar."""
        st, pool = c.staging, c.staging_pool
        if st is None or pool is None or st.nbytes < nbytes:
            if st is not None:
                st.close()
                c.staging = c.staging_pool = None
            st = c.staging = Staging(max(nbytes, STAGING_MIN_BYTES))
            pool = c.staging_pool = c.client.register(st.fd, st.nbytes)
        return st, pool

    def _staged_get(self, c: Conn, names: KeyBlob, objects: Sequence[Ranges]) -> str:
        """Reads objects through this connection's staging memfd (pools the sidecar cannot map, objects
        of several ranges): the sidecar READs them packed into it, each one found is copied out to its
        ranges. The answer, one '1'/'0' per object."""
        offsets, sizes = _packed(objects)
        st, pool = self._staging(c, sum(sizes))
        bits = c.client.get(pool, names, offsets, sizes)
        copied = 0
        for j, ch in enumerate(bits):
            if ch == "1":
                o = st.address + offsets[j]
                for ptr, nb in objects[j]:
                    ctypes.memmove(ptr, o, nb)
                    o += nb
                copied += sizes[j]
        self._count(staging_copies=1, staging_bytes=copied)
        return bits

    def _staged_set(self, c: Conn, names: KeyBlob, objects: Sequence[Ranges]) -> str:
        """Publishes objects through this connection's staging memfd: each is copied in from its ranges,
        packed, and the sidecar publishes them from there. The answer, one '1'/'0' per object."""
        offsets, sizes = _packed(objects)
        st, pool = self._staging(c, sum(sizes))
        for j, ranges in enumerate(objects):
            o = st.address + offsets[j]
            for ptr, nb in ranges:
                ctypes.memmove(o, ptr, nb)
                o += nb
        self._count(staging_copies=1, staging_bytes=sum(sizes))
        return c.client.set(pool, names, offsets, sizes)

    def _guard(self, what: str, fn: Callable[[Conn], T], miss: T) -> T:
        """Runs fn(conn); any failure is logged and gives `miss` (never an exception, never None)."""
        try:
            if self.unusable is not None:
                raise BadInput(self.unusable)
            return fn(self._conn())
        except BadInput as e:
            self._count(bad_inputs=1)
            self._log(logging.WARNING, what + ":" + str(e)[:60], "%s: %s (the entries are misses)" % (what, e))
        except SidecarError as e:
            self._count(errors=1)
            self._log(logging.WARNING, what + ":sidecar:" + str(e)[:60], "%s: the sidecar refused the request (%s): %s" % (what, e.code, e))
        except (OSError, ConnectionError, socket.timeout, ValueError) as e:
            self._count(errors=1)
            c = getattr(self._local, "conn", None)
            if c is not None:
                c.client.close()
            self._log(logging.WARNING, what + ":io", "%s: %s (misses until the sidecar answers)" % (what, e))
        except Exception as e:  # a bug must not kill SGLang's thread either
            self._count(errors=1)
            self._log(logging.ERROR, what + ":bug", "%s: unexpected %s: %s" % (what, type(e).__name__, e))
        return miss

    @staticmethod
    def _add_client_counters(counters: Dict[str, Any], client: SidecarClient) -> None:
        """What a connection counts itself: seconds spent polling, calls through its lane, the events
        it sent because the sidecar was not polling, and those that woke it."""
        counters["poll_seconds"] += client.polled_s
        counters["lane_calls"] += client.lane_calls
        counters["lane_nudges"] += client.lane_nudges
        counters["lane_wakeups"] += client.lane_wakeups
