"""PeerCacheStorage: SGLang's HiCacheStorage over the local `peercache node` sidecar.

Data path: SGLang's host KV pool lives in a memfd (`"allocator": "shm"`); on register_mem_pool_host
each thread's connection tells the sidecar the pool's (pid, fd, bytes); the sidecar maps it and
READs pages from peers straight into it (batch_get_v1) or publishes from it (batch_set_v1). Pools
it cannot map (anonymous memory) go through a staging memfd and one copy (`adapter_stats()` counts it).

Contract with SGLang's threads (prefetch: batch_exists; prefetch IO: batch_get_v1; backup:
batch_set_v1): nothing raises, nothing returns None, every call has a deadline, any number of
threads may call at once (one connection per thread). A sidecar that dies gives misses; the next
call after it is back reconnects and registers the pool again.

The class is assembled from one module per seam: config.py (AdapterConfig), naming.py (object
names), connections.py (per-thread connections, the guard), v1.py (zero-copy pages), v2.py (hybrid
pools), generic.py (copying calls); this module holds registration, stats and lifecycle.
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Dict, List, Mapping, Optional, Tuple

from .config import DEFAULT_SOCKET, AdapterConfig
from .connections import IDLE_CHECK_S, STAGING_MIN_BYTES
from .errors import BadInput
from .generic import CopyCalls
from .geometry import PageGeometry
from .naming import object_names
from .pools import FileSpan, allocator_fds, find_file_span, pool_buffers
from .sglang_compat import HiCacheStorageBase, storage_metrics_class
from .v1 import MAX_RECORDS

logger = logging.getLogger("peercache_sglang")

__all__ = ["PeerCacheStorage", "PeerCacheStats", "AdapterConfig", "BadInput", "DEFAULT_SOCKET", "SERVED_LAYOUTS",
           "MAX_RECORDS", "IDLE_CHECK_S", "STAGING_MIN_BYTES"]

# The layouts served, as MooncakeStore serves them: page_first, page_first_direct (MLA and MHA), page_head
# (MHA: k and v of a page each contiguous) and layer_first (MLA: one object made of layer_num ranges).
SERVED_LAYOUTS = ("page_first", "page_first_direct", "page_head", "layer_first")


class PeerCacheStats(object):
    """adapter_stats(): running counters of this adapter (zero_copy, staging copies, errors,
    reconnects, ...). SGLang's own metrics come from get_stats() (its StorageMetrics)."""

    # The counters, as attributes (PeerCacheStorage._counters and Connections._add_client_counters name them).
    zero_copy: bool
    geometry: bool
    exists_calls: int
    get_calls: int
    get_pages: int
    get_hits: int
    set_calls: int
    set_pages: int
    set_ok: int
    geometry_mismatches: int
    staging_copies: int
    staging_bytes: int
    poll_seconds: float
    lane_calls: int
    lane_nudges: int
    lane_wakeups: int
    errors: int
    bad_inputs: int
    reconnects: int
    connect_failures: int

    def __init__(self, counters: Mapping[str, Any]) -> None:
        self.__dict__.update(counters)
        self.counters = dict(counters)

    def __repr__(self) -> str:
        return "PeerCacheStats(%r)" % (self.counters,)


class PeerCacheStorage(CopyCalls, HiCacheStorageBase):
    def __init__(self, storage_config: Any = None, kwargs: Optional[Mapping[str, Any]] = None, **extra: Any) -> None:
        self.config = storage_config  # SGLang's own object, as given
        cfg = AdapterConfig.from_sglang(storage_config, kwargs, **extra)
        self.adapter_config = cfg
        # The fields other modules read (and tools may set, e.g. socket_path), copied from the parsed config.
        self.socket_path = cfg.socket_path
        self.timeout_s = cfg.timeout_s
        self.connect_timeout_s = cfg.connect_timeout_s
        self.retry_s = cfg.retry_s
        self.poll_us = cfg.poll_us
        self.interface_v1 = cfg.interface_v1
        self.enable_metrics = cfg.enable_metrics
        self.tp_rank, self.pp_rank, self.pp_size = cfg.tp_rank, cfg.pp_rank, cfg.pp_size
        self.cp_rank, self.cp_size = cfg.cp_rank, cfg.cp_size
        self.is_mla = cfg.is_mla
        self.key_prefix = cfg.key_prefix
        self.mem_pool_host = None
        self.multi_range = False
        self.v2_pools = {}  # name -> (host pool, object suffixes, FileSpans or None: staging)
        self.mla_part = self.mha_part = ""
        self.page_size = 0
        self.pool_tokens = None
        self.suffixes = ["__k"]
        self.spans = []  # FileSpan per pool buffer: zero copy
        self.files: Dict[int, Tuple[int, int]] = {}  # inode -> (fd, file bytes)
        self.zero_copy = False
        self.geometry = None  # PageGeometry: page offsets without get_page_buffer_meta (zero copy)
        self._geometry_calls = 0
        self.unusable = None  # why batch calls are misses (unsupported layout), or None
        self.slot_bytes = 0
        self._local = threading.local()
        self._conns = set()
        self._lock = threading.Lock()
        self._next_connect = 0.0
        self._closed = False
        self._logged = {}
        self._counters = dict(
            zero_copy=False, exists_calls=0, get_calls=0, get_pages=0, get_hits=0, set_calls=0, set_pages=0, set_ok=0,
            geometry=False, geometry_mismatches=0, staging_copies=0, staging_bytes=0, poll_seconds=0.0, lane_calls=0, lane_nudges=0, lane_wakeups=0, errors=0, bad_inputs=0, reconnects=0, connect_failures=0,
        )
        self._lists = dict(prefetch_pgs=[], backup_pgs=[], prefetch_bandwidth=[], backup_bandwidth=[])
        self.gb_per_page = 0.0  # as MooncakeStore: the K bytes of a page (get_ksize_per_token x page_size) in GiB
        if not self.interface_v1:
            logger.warning("peercache: \"interface_v1\" is not set in the extra config, so SGLang uses the copying batch_get/batch_set "
                           "(one copy through a staging buffer each way); set \"interface_v1\": 1 for zero copy")

    def register_mem_pool_host(self, mem_pool_host: Any) -> None:
        self.mem_pool_host = mem_pool_host
        try:
            self._describe_pool(mem_pool_host)
        except Exception as e:  # never raise into SGLang
            self.unusable = "cannot use the host pool: %s" % e
            self._log(logging.ERROR, "register", self.unusable)
        with self._lock:
            conns = list(self._conns)
        for c in conns:  # registered again on their next call
            c.file_pools.clear()
            c.client.close()

    def _object_suffixes(self) -> List[str]:
        """This rank's page suffixes (naming.object_names); sets mla_part and mha_part for v2 pools."""
        names = object_names(bool(self.is_mla), self.tp_rank, self.pp_rank, self.pp_size, self.cp_rank, self.cp_size)
        self.mla_part, self.mha_part = names.mla_part, names.mha_part
        return names.suffixes

    def _describe_pool(self, pool: Any) -> None:
        self.page_size = int(getattr(pool, "page_size", 0) or 0)
        if self.page_size <= 0:
            raise BadInput("the host pool has no page_size")
        try:
            self.gb_per_page = float(pool.get_ksize_per_token()) * self.page_size / (1 << 30)
        except Exception:
            self.gb_per_page = 0.0
        size: Any = getattr(pool, "size", None)
        self.pool_tokens = int(size) if isinstance(size, int) or hasattr(size, "__index__") else None
        mla = self.is_mla
        if mla is None:
            mla = "MLA" in type(pool).__name__
        self.is_mla = bool(mla)
        self.suffixes = self._object_suffixes()
        layout = getattr(pool, "layout", "page_first")
        if layout not in SERVED_LAYOUTS or (layout == "layer_first" and not self.is_mla) or (layout == "page_head" and self.is_mla):
            # As MooncakeStore: MHA layer_first has no page-contiguous objects ("Use page_first/page_first_direct
            # for MHA"), page_first_kv_split has no get_page_buffer_meta in SGLang (an Ascend layout).
            self.unusable = "host layout %r is not served for %s pools (start SGLang with --hicache-mem-layout page_first or page_first_direct)" % (
                layout, "MLA" if self.is_mla else "MHA")
            self._log(logging.ERROR, "layout", self.unusable)
            return
        self.unusable = None
        # MLA layer_first: a page is layer_num ranges, one per layer (MooncakeStore's _pack_multi_buffer_meta):
        # one object each, moved through the staging memfd (gathered to set, scattered after get).
        self.multi_range = layout == "layer_first"
        spans: List[FileSpan] = []
        files: Dict[int, Tuple[int, int]] = {}
        why: Optional[str] = None
        for addr, nbytes in pool_buffers(pool):
            span, reason = find_file_span(addr, nbytes, allocator_fds(pool))
            if span is None:
                why = reason
                break
            spans.append(span)
            files.setdefault(span.inode, (span.fd, span.file_bytes))
        if not spans and why is None:
            why = "the host pool exposes no kv_buffer/k_buffer/v_buffer"
        if self.multi_range and why is None:
            why = "layout layer_first: a page is one range per layer (--hicache-mem-layout page_first is zero copy)"
        self.zero_copy = why is None
        self.spans = spans if self.zero_copy else []
        self.files = files if self.zero_copy else {}
        self.geometry = None
        if self.zero_copy:
            try:
                self.geometry, reason = PageGeometry.probe(pool, self.page_size, self.pool_tokens, len(self.suffixes), spans)
            except Exception as e:  # a pool whose get_page_buffer_meta wants other input: ask it per batch
                reason = "%s: %s" % (type(e).__name__, e)
            if self.geometry is None:
                self._log(logging.INFO, "geometry", "page offsets come from get_page_buffer_meta on every batch (%s)" % reason)
        with self._lock:
            self._counters["zero_copy"] = self.zero_copy
            self._counters["geometry"] = self.geometry is not None
        if not self.zero_copy:
            self._log(logging.WARNING, "staging", "not zero-copy, pages go through a staging memfd (one copy each way): %s" % why)

    def clear(self) -> bool:
        """Removes every object this host's sidecar publishes; other hosts keep theirs
        (Mooncake's remove_all empties the whole cluster). Raises when the sidecar cannot do it, so
        SGLang's clear_storage_backend reports the failure instead of "cleared successfully"."""
        if self.unusable is not None:
            raise RuntimeError("peercache: clear: %s" % self.unusable)
        try:
            self._conn().client.clear()
        except Exception as e:
            self._count(errors=1)
            c = getattr(self._local, "conn", None)
            if c is not None:
                c.client.close()
            raise RuntimeError("peercache: clear failed (sidecar at %s): %s" % (self.socket_path, e))
        return True

    def get_stats(self) -> Any:
        """SGLang's StorageMetrics with the calls recorded since the last call (drained, as MooncakeStore's)."""
        with self._lock:
            lists = self._lists
            self._lists = dict(prefetch_pgs=[], backup_pgs=[], prefetch_bandwidth=[], backup_bandwidth=[])
        m = storage_metrics_class()()
        m.prefetch_pgs.extend(lists["prefetch_pgs"])
        m.backup_pgs.extend(lists["backup_pgs"])
        m.prefetch_bandwidth.extend(lists["prefetch_bandwidth"])
        m.backup_bandwidth.extend(lists["backup_bandwidth"])
        return m

    def adapter_stats(self) -> PeerCacheStats:
        """This adapter's running counters (not drained): zero copy, geometry, staging copies, polling, errors, reconnects."""
        with self._lock:
            counters = dict(self._counters)
            for c in self._conns:
                self._add_client_counters(counters, c.client)
        return PeerCacheStats(counters)

    def sidecar_stats(self) -> Dict[str, Any]:
        """The sidecar's counters (store stats, connections, pools), or {} when unreachable."""
        return self._guard("stats", lambda c: c.client.stats(), {})

    def close(self) -> None:
        self._closed = True
        with self._lock:
            conns = list(self._conns)
            self._conns.clear()
        for c in conns:
            try:
                c.close()
            except Exception:
                pass
