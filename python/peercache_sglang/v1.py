"""The zero-copy page calls SGLang's HiCache makes with interface_v1 (batch_exists, batch_get_v1,
batch_set_v1): each page's objects located in the registered pool file (the probed page formula, or
the pool's get_page_buffer_meta), read or written there by the sidecar; staging memfd otherwise."""
from __future__ import annotations

import logging
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from .client import KeyBlob
from .connections import Conn, Connections, Ranges
from .errors import BadInput
from .geometry import RECHECK_EVERY, PageGeometry
from .naming import check_keys, names_blob
from .pools import FileSpan

_INT_ONLY = frozenset((int,))  # page starts must be ints (a bool or float is refused)
# Per-call records kept for get_stats() between two drains (SGLang drains on every prefill check;
# a scheduler that never drains must not grow the adapter without bound).
MAX_RECORDS = 4096

Lengths = Union[int, List[int]]


class PageCalls(Connections):
    """The v1 part of PeerCacheStorage (its state is set in PeerCacheStorage.__init__ and register_mem_pool_host)."""

    mem_pool_host: Any
    interface_v1: bool
    is_mla: Optional[bool]
    tp_rank: int
    suffixes: List[str]
    page_size: int
    pool_tokens: Optional[int]
    multi_range: bool
    spans: List[FileSpan]
    geometry: Optional[PageGeometry]
    _geometry_calls: int
    enable_metrics: bool
    gb_per_page: float
    _lists: Dict[str, List[Any]]

    key_prefix: str

    def _check_keys(self, keys: Any) -> None:
        check_keys(keys)

    def _names(self, keys: Any, suffixes: Optional[Sequence[str]] = None) -> KeyBlob:
        """The batch's object names (prefix + key + each suffix) as one KeyBlob, checking the keys on the way."""
        return names_blob(self.key_prefix, keys, self.suffixes if suffixes is None else suffixes)

    def _generic_suffix(self, part: int) -> str:
        raise NotImplementedError

    def _kv_anchor_is_logical(self) -> bool:
        raise NotImplementedError

    def _pages(self, keys: Any, host_indices: Any) -> Tuple[KeyBlob, List[int]]:
        """Object names (a KeyBlob) and each page's first token index, after checking them against the pool."""
        names = self._names(keys)
        pool = self.mem_pool_host
        if pool is None:
            raise BadInput("no host pool registered (register_mem_pool_host was not called)")
        try:
            n = len(host_indices)
        except TypeError:
            raise BadInput("host_indices must be a tensor, array or list of token indices")
        ps = self.page_size
        if n != len(keys) * ps:
            raise BadInput("%d host indices for %d keys of %d tokens per page (expected %d)" % (n, len(keys), ps, len(keys) * ps))
        firsts = host_indices[::ps]
        starts: List[int] = firsts.tolist() if hasattr(firsts, "tolist") else list(firsts)
        limit = self.pool_tokens
        # One pass in C for the usual batch (ints, in the pool, page-aligned); the slow loop names the bad one.
        if not starts or not (
            set(map(type, starts)) == _INT_ONLY
            and not any(map(ps.__rmod__, starts))  # x % ps, in C
            and min(starts) >= 0
            and (limit is None or max(starts) + ps <= limit)
        ):
            for i, x in enumerate(starts):
                if type(x) is not int or x < 0 or x % ps != 0 or (limit is not None and x + ps > limit):
                    raise BadInput("page %d starts at token index %r: not a page of the host pool (%s tokens, pages of %d)" % (i, x, limit, ps))
        return names, starts

    def _meta(self, host_indices: Any, npages: int) -> Tuple[List[int], List[int]]:
        """The pool's own pointers and lengths of a batch's objects (get_page_buffer_meta), checked."""
        meta = self.mem_pool_host.get_page_buffer_meta(host_indices)
        ptrs, sizes = meta[0], meta[1]
        if type(ptrs) is not list:
            ptrs = ptrs.tolist() if hasattr(ptrs, "tolist") else list(ptrs)
        comps = len(self.suffixes)
        if len(ptrs) != npages * comps:
            raise BadInput("get_page_buffer_meta gave %d pointers for %d pages of %d objects (layout not page_first?)" % (len(ptrs), npages, comps))
        if isinstance(sizes, int):
            sizes = [sizes] * len(ptrs)
        else:
            sizes = sizes.tolist() if hasattr(sizes, "tolist") else list(sizes)
            if len(sizes) == 1:
                sizes = sizes * len(ptrs)
        return ptrs, sizes

    def _multi_meta(self, host_indices: Any, npages: int) -> List[Ranges]:
        """Each page's ranges [(ptr, bytes), ...] from get_page_buffer_meta (MLA layer_first: one per layer)."""
        ptrs, sizes = self.mem_pool_host.get_page_buffer_meta(host_indices)
        ptrs = ptrs.tolist() if hasattr(ptrs, "tolist") else list(ptrs)
        sizes = [sizes] * len(ptrs) if isinstance(sizes, int) else (sizes.tolist() if hasattr(sizes, "tolist") else list(sizes))
        if not npages or len(ptrs) % npages or len(sizes) != len(ptrs):
            raise BadInput("get_page_buffer_meta gave %d pointers for %d pages" % (len(ptrs), npages))
        k = len(ptrs) // npages
        return [list(zip(ptrs[i * k:(i + 1) * k], sizes[i * k:(i + 1) * k])) for i in range(npages)]

    def _staged_objects(self, host_indices: Any, npages: int) -> List[Ranges]:
        """A batch's objects where they lie in the pool, for the staging path: one range each, or one
        per layer (MLA layer_first)."""
        if self.multi_range:
            return self._multi_meta(host_indices, npages)
        ptrs, sizes = self._meta(host_indices, npages)
        return [[(p, n)] for p, n in zip(ptrs, sizes)]

    def _file_ranges(self, c: Conn, host_indices: Any, starts: List[int]) -> Tuple[Any, List[int], Lengths]:
        """(pool, offsets, lengths) of a batch's objects in the registered pool file(s): from the verified
        formula when there is one (the pool's own answer compared every RECHECK_EVERY calls), else asked."""
        g = self.geometry
        if g is not None:
            self._geometry_calls += 1  # unlocked: a race between threads only moves a recheck by a call
            if (self._geometry_calls - 1) % RECHECK_EVERY:  # the first call, and every RECHECK_EVERY-th, ask the pool too
                return c.file_pools[g.inode], g.file_offsets(starts), g.object_bytes
        ptrs, sizes = self._meta(host_indices, len(starts))
        pool, offsets = self._zero_copy_ranges(c, ptrs, sizes)
        lengths = self._lengths(sizes)
        if g is not None and (offsets != g.file_offsets(starts) or lengths != g.object_bytes or pool != c.file_pools[g.inode]):
            self.geometry = None
            with self._lock:
                self._counters["geometry"] = False
                self._counters["geometry_mismatches"] += 1
            self._log(logging.ERROR, "geometry-mismatch", "get_page_buffer_meta no longer matches the page formula probed at registration: asking it on every batch from now on")
        return pool, offsets, lengths

    def _zero_copy_ranges(self, c: Conn, ptrs: List[int], sizes: List[int]) -> Tuple[Any, List[int]]:
        spans = self.spans
        if len(spans) == 1:  # the usual case (one kv_buffer): one subtraction per object
            sp = spans[0]
            top = max(ptrs) + sizes[0] if sizes.count(sizes[0]) == len(sizes) else max(p + n for p, n in zip(ptrs, sizes))
            if min(ptrs) >= sp.address and top <= sp.end:
                delta = sp.file_offset - sp.address
                return c.file_pools[sp.inode], [p + delta for p in ptrs]
        pools, offsets = [], []
        for ptr, n in zip(ptrs, sizes):
            for sp in spans:
                if sp.address <= ptr and ptr + n <= sp.end:
                    pools.append(c.file_pools[sp.inode])
                    offsets.append(sp.file_offset + (ptr - sp.address))
                    break
            else:
                raise BadInput("a page at 0x%x (%d bytes) lies outside the registered host pool" % (ptr, n))
        if len(set(pools)) == 1:
            return pools[0], offsets
        return pools, offsets

    @staticmethod
    def _lengths(sizes: List[int]) -> Lengths:
        """One int when every object has the same length (a shorter request), else the list."""
        first = sizes[0]
        return first if sizes.count(first) == len(sizes) else sizes

    @staticmethod
    def _bytes(lengths: Lengths, objects: int) -> int:
        """Bytes of the first `objects` objects (lengths: one int for all, or the list)."""
        return lengths * objects if isinstance(lengths, int) else sum(lengths[:objects])

    @staticmethod
    def _per_page(bits: str, comps: int, npages: int) -> List[bool]:
        if "0" not in bits:
            return [True] * npages
        if comps == 1:
            return [ch == "1" for ch in bits]
        return [all(bits[i * comps + j] == "1" for j in range(comps)) for i in range(npages)]

    def batch_exists(self, keys: List[str], extra_info: Any = None) -> int:
        self._count(exists_calls=1)

        def run(c: Conn) -> Any:
            names = self._names(keys) if self.interface_v1 else self._names(keys, [self._generic_suffix(0)])
            if not keys:
                return 0
            comps = len(self.suffixes) if self.interface_v1 else 1
            found = c.client.exists(names)
            if len(found) != len(names):
                raise ConnectionError("malformed exists answer")
            first_miss = found.find("0")
            return len(keys) if first_miss < 0 else first_miss // comps

        return self._guard("batch_exists", run, 0)

    def batch_get_v1(self, keys: List[str], host_indices: Any, extra_info: Any = None) -> List[bool]:
        n = len(keys) if isinstance(keys, (list, tuple)) else 0
        if n and self._kv_anchor_is_logical():
            return [True] * n  # DeepSeek-V4: the KV anchor holds no data (its v2 pools do), as MooncakeStore
        self._count(get_calls=1, get_pages=n)
        t0 = time.monotonic()

        def run(c: Conn) -> Any:
            names, starts = self._pages(keys, host_indices)
            if not names:
                return []
            comps = len(self.suffixes)
            if self.zero_copy and not self.multi_range:
                pool, offsets, lengths = self._file_ranges(c, host_indices, starts)
                bits = c.client.get(pool, names, offsets, lengths)
            else:
                bits = self._staged_get(c, names, self._staged_objects(host_indices, len(starts)))
            if len(bits) != len(names):
                raise ConnectionError("malformed get answer")
            out = self._per_page(bits, comps, len(keys))
            first_miss = bits.find("0")
            self._record("prefetch", len(keys), t0, get_hits=len(out) if first_miss < 0 else sum(out))
            return out

        return self._guard("batch_get_v1", run, [False] * n)

    def batch_set_v1(self, keys: List[str], host_indices: Any, extra_info: Any = None) -> List[bool]:
        n = len(keys) if isinstance(keys, (list, tuple)) else 0
        if n and self._kv_anchor_is_logical():
            return [True] * n  # DeepSeek-V4: the KV anchor holds no data (its v2 pools do), as MooncakeStore
        self._count(set_calls=1, set_pages=n)
        t0 = time.monotonic()

        def run(c: Conn) -> Any:
            names, starts = self._pages(keys, host_indices)
            if not names:
                return []
            if self.is_mla and self.tp_rank != 0:
                # MLA pages are the same on every rank: rank 0 writes them (SGLang skips the others).
                return [True] * len(keys)
            if self.zero_copy and not self.multi_range:
                pool, offsets, lengths = self._file_ranges(c, host_indices, starts)
                self._check_slot(lengths if isinstance(lengths, int) else max(lengths))
                bits = c.client.set(pool, names, offsets, lengths)
            else:
                objects = self._staged_objects(host_indices, len(starts))
                self._check_slot(max(sum(nb for _, nb in ranges) for ranges in objects))
                bits = self._staged_set(c, names, objects)
            if len(bits) != len(names):
                raise ConnectionError("malformed set answer")
            out = self._per_page(bits, len(self.suffixes), len(keys))
            self._record("backup", len(keys), t0, set_ok=sum(out))
            return out

        return self._guard("batch_set_v1", run, [False] * n)

    def _check_slot(self, largest: int, pool: str = "") -> None:
        """Refuses objects larger than the sidecar's slots (it would refuse each of them)."""
        if self.slot_bytes and largest > self.slot_bytes:
            raise BadInput("%sobjects of %d bytes exceed the sidecar's --slot-bytes %d" % ("pool %r: " % pool if pool else "", largest, self.slot_bytes))

    def _record(self, kind: str, pages: int, t0: float, **counters: Any) -> None:
        """Adds `counters`, and with storage metrics on, the call's pages and bandwidth to the lists
        get_stats() drains, as MooncakeStore counts them: the batch's pages, and pages x gb_per_page
        over the call's time (GiB/s of K bytes). Each list keeps its last MAX_RECORDS entries."""
        dt = time.monotonic() - t0
        with self._lock:
            for k, v in counters.items():
                self._counters[k] += v
            if not self.enable_metrics:
                return
            pgs, bw = self._lists[kind + "_pgs"], self._lists[kind + "_bandwidth"]
            pgs.append(pages)
            if dt > 0:
                bw.append(pages / dt * self.gb_per_page)
            for lst in (pgs, bw):
                if len(lst) > MAX_RECORDS:
                    del lst[: len(lst) - MAX_RECORDS]
