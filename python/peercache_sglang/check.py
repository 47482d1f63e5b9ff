"""`python3 -m peercache_sglang --socket PATH`: is this host's sidecar ready for SGLang?

It does what SGLang's threads will do, through the same adapter, with a pool of its own: connects
(protocol, node, transport), registers a memfd host pool (zero copy?), publishes pages of random
bytes under keys of its own (`peercache-check/<random>/…`), asks for them (batch_exists), reads them
back into other pages of the pool (batch_get_v1) and compares every byte. It prints one line per
step and the p50 of each call; exit 0 when every step passed, 1 when one failed (the line says
which and why), 2 for bad arguments. The pages it publishes stay in the store until evicted.
"""
import argparse
import ctypes
import mmap
import os
import re
import sys
import time
import uuid
from typing import Any, Callable, List, Optional, TextIO, Tuple

from .backend import DEFAULT_SOCKET, PeerCacheStorage
from .client import SidecarClient
from .frames import SidecarError


class CheckPool(object):
    """A page_first MLA-shaped host pool in a memfd, one token per page: what SGLang's
    `"allocator": "shm"` pool looks like to the adapter (kv_buffer, allocator.fd, get_page_buffer_meta)."""

    layout = "page_first"
    page_size = 1

    def __init__(self, pages: int, page_bytes: int) -> None:
        self.size = pages
        self.page_bytes = page_bytes
        self.nbytes = pages * page_bytes
        self.fd = os.memfd_create("peercache-check-pool", getattr(os, "MFD_CLOEXEC", 1))
        os.ftruncate(self.fd, self.nbytes)
        self.map = mmap.mmap(self.fd, self.nbytes, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        self._anchor: Optional[ctypes.c_char] = ctypes.c_char.from_buffer(self.map)
        self.base = ctypes.addressof(self._anchor)
        self.kv_buffer = (self.base, self.nbytes)
        self.allocator = type("Allocator", (), {"fd": self.fd})()

    def get_page_buffer_meta(self, indices: Any) -> Tuple[List[int], List[int]]:
        firsts = indices.tolist() if hasattr(indices, "tolist") else list(indices)
        return [self.base + t * self.page_bytes for t in firsts], [self.page_bytes] * len(firsts)

    def page(self, p: int) -> bytes:
        return bytes(self.map[p * self.page_bytes:(p + 1) * self.page_bytes])

    def close(self) -> None:
        self._anchor = None
        self.map.close()
        os.close(self.fd)


class CheckFailed(Exception):
    pass


def _p50_us(fn: Callable[[], Any], n: int) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e6)
    times.sort()
    return times[len(times) // 2]


def run_check(socket_path: str, pages: int = 8, page_bytes: int = 0, iterations: int = 20, timeout_s: float = 5.0, out: TextIO = sys.stdout) -> None:
    """Runs every step; raises CheckFailed naming the first that failed."""
    def say(line: str) -> None:
        out.write(line + "\n")

    probe = SidecarClient(socket_path, timeout_s)
    try:
        hello = probe.connect()
    except (OSError, SidecarError) as e:
        raise CheckFailed("cannot talk to the sidecar at %s: %s (is `peercache node --socket %s` running as this user?)" % (socket_path, e, socket_path))
    finally:
        probe.close()
    slot = int(hello.get("slotBytes", 0))
    say("sidecar: node %s, protocol %s, transport %s, objects up to %d bytes" % (hello.get("nodeId"), hello.get("protocol"), hello.get("transport"), slot))
    page_bytes = page_bytes or slot
    if page_bytes <= 0:
        raise CheckFailed("the sidecar did not say its slot size: pass --page-bytes")
    if page_bytes > slot:
        raise CheckFailed("--page-bytes %d is more than the sidecar's --slot-bytes %d" % (page_bytes, slot))
    pool = CheckPool(2 * pages, page_bytes)
    config = type("Config", (), {"is_mla_model": True, "tp_rank": 0, "pp_rank": 0, "pp_size": 1, "extra_config": None})()
    storage = PeerCacheStorage(config, {"socket": socket_path, "interface_v1": 1, "timeout_s": timeout_s, "retry_s": 0.1})
    try:
        storage.register_mem_pool_host(pool)
        st = storage.adapter_stats()
        say("pool: %d pages of %d bytes in a memfd, zero copy %s, page formula %s" % (2 * pages, page_bytes, "yes" if st.zero_copy else "NO (staging copies)", "yes" if st.geometry else "no"))
        keys = ["peercache-check/%s/%d" % (uuid.uuid4().hex, i) for i in range(pages)]
        src, dst = list(range(pages)), list(range(pages, 2 * pages))
        for p in src:
            pool.map[p * page_bytes:(p + 1) * page_bytes] = os.urandom(page_bytes)
        ok = storage.batch_set_v1(keys, src)
        if ok != [True] * pages:
            raise CheckFailed("batch_set_v1 published %d of %d pages (the sidecar's log says why)" % (sum(ok), pages))
        found = storage.batch_exists(keys)
        if found != pages:
            raise CheckFailed("batch_exists found %d of the %d pages just published" % (found, pages))
        got = storage.batch_get_v1(keys, dst)
        if got != [True] * pages:
            raise CheckFailed("batch_get_v1 read %d of %d pages" % (sum(got), pages))
        wrong = [i for i in range(pages) if pool.page(dst[i]) != pool.page(src[i])]
        if wrong:
            raise CheckFailed("%d of %d pages read back differ from what was published (first: page %d)" % (len(wrong), pages, wrong[0]))
        say("set, exists, get: %d pages published, found and read back, every byte equal" % pages)
        exists_us = _p50_us(lambda: storage.batch_exists(keys), iterations)
        get_us = _p50_us(lambda: storage.batch_get_v1(keys, dst), iterations)
        mib = pages * page_bytes / 2 ** 20
        say("p50 over %d calls: batch_exists %.0f µs, batch_get_v1 %.0f µs (%.2f GiB/s for %.1f MiB)" % (iterations, exists_us, get_us, mib / 1024 / (get_us / 1e6), mib))
        st = storage.adapter_stats()
        if st.errors or st.bad_inputs:
            raise CheckFailed("the adapter counted %d errors and %d bad inputs" % (st.errors, st.bad_inputs))
    finally:
        storage.close()
        pool.close()


_SIZE = re.compile(r"^((?:\d+(?:\.\d*)?|\.\d+))\s*(b|k|kb|kib|m|mb|mib|g|gb|gib)?$", re.I)
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}


def parse_size(text: str) -> int:
    """Bytes as the Node CLIs take them (src/cli/parse.ts): 4096, 128k, 1.5m, 4g (binary units)."""
    m = _SIZE.match(text.strip())
    if not m:
        raise argparse.ArgumentTypeError("%r is not a size (bytes, or a number with k/m/g, e.g. 4096, 128k, 1.5m)" % text)
    unit = (m.group(2) or "").lower()[:1]
    n = float(m.group(1)) * _UNITS[unit]
    if n != int(n):
        raise argparse.ArgumentTypeError("%r is not a whole number of bytes" % text)
    return int(n)


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m peercache_sglang", description=__doc__.split("\n")[0])
    ap.add_argument("--socket", default=os.environ.get("PEERCACHE_SOCKET") or DEFAULT_SOCKET, help="the sidecar's socket (default: $PEERCACHE_SOCKET or %s)" % DEFAULT_SOCKET)
    ap.add_argument("--pages", type=int, default=8, help="pages to publish and read back (1..128, default 8)")
    ap.add_argument("--page-bytes", type=parse_size, default=0, help="bytes per page; k/m/g suffixes, as peercache node's --slot-bytes (default: the sidecar's --slot-bytes)")
    ap.add_argument("--iterations", type=int, default=20, help="timed calls of each kind (default 20)")
    ap.add_argument("--timeout", type=float, default=5.0, help="deadline of one call in seconds (default 5)")
    args = ap.parse_args(argv)
    if not 1 <= args.pages <= 128:
        ap.error("--pages must be 1..128")
    if args.page_bytes < 0 or args.iterations < 1 or args.timeout <= 0:
        ap.error("--page-bytes must be >= 0, --iterations >= 1, --timeout > 0")
    try:
        run_check(args.socket, args.pages, args.page_bytes, args.iterations, args.timeout)
    except CheckFailed as e:
        sys.stderr.write("peercache check: FAILED: %s\n" % e)
        return 1
    except KeyboardInterrupt:
        return 130
    sys.stdout.write("peercache check: ok\n")
    return 0
