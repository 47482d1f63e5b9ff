"""PeerCacheStorage: SGLang's HiCacheStorage over the local `peercache node` sidecar.

Data path: SGLang's host KV pool lives in a memfd (`"allocator": "shm"`); on register_mem_pool_host
each thread's connection tells the sidecar the pool's (pid, fd, bytes); the sidecar maps it and
READs pages from peers straight into it (batch_get_v1) or publishes from it (batch_set_v1). Pools
it cannot map (anonymous memory) go through a staging memfd and one copy (`get_stats()` counts it).

Contract with SGLang's threads (prefetch: batch_exists; prefetch IO: batch_get_v1; backup:
batch_set_v1): nothing raises, nothing returns None, every call has a deadline, any number of
threads may call at once (one connection per thread). A sidecar that dies gives misses; the next
call after it is back reconnects and registers the pool again.
"""
import ctypes
import logging
import os
import socket
import threading
import time

from .client import KeyBlob, SidecarClient, SidecarError
from .geometry import RECHECK_EVERY, PageGeometry
from .pools import Staging, allocator_fds, buffer_address, find_file_span, pool_buffers

logger = logging.getLogger("peercache_sglang")

from .sglang_compat import PoolTransferResult, _Base, storage_metrics_class


DEFAULT_SOCKET = "/run/peercache/peercache.sock"
STAGING_MIN_BYTES = 16 * 1024 * 1024
# A connection unused this long is checked for having been closed by the sidecar before it is used (one peek).
IDLE_CHECK_S = 1.0
_INT_ONLY = frozenset((int,))  # page starts must be ints (a bool or float is refused)
# The layouts served, as MooncakeStore serves them: page_first, page_first_direct (MLA and MHA), page_head
# (MHA: k and v of a page each contiguous) and layer_first (MLA: one object made of layer_num ranges).
SERVED_LAYOUTS = ("page_first", "page_first_direct", "page_head", "layer_first")


class BadInput(ValueError):
    """A call's arguments cannot be served: its entries are False and the reason is logged."""


# Per-call records kept for get_stats() between two drains (SGLang drains on every prefill check;
# a scheduler that never drains must not grow the adapter without bound).
MAX_RECORDS = 4096


class PeerCacheStats(object):
    """adapter_stats(): running counters of this adapter (zero_copy, staging copies, errors,
    reconnects, ...). SGLang's own metrics come from get_stats() (its StorageMetrics)."""

    def __init__(self, counters):
        self.__dict__.update(counters)
        self.counters = dict(counters)

    def __repr__(self):
        return "PeerCacheStats(%r)" % (self.counters,)


def _cfg(config, name, default):
    return getattr(config, name, default) if config is not None else default


class _Conn(object):
    """One thread's connection, with the pool files registered on it and its staging memfd."""

    def __init__(self, client):
        self.client = client
        self.file_pools = {}  # inode -> pool id
        self.staging = None
        self.staging_pool = None

    def close(self):
        self.client.close()
        if self.staging is not None:
            self.staging.close()
            self.staging = None


class PeerCacheStorage(_Base):
    def __init__(self, storage_config=None, kwargs=None, **extra):
        self.config = storage_config
        cfg = dict(_cfg(storage_config, "extra_config", None) or {})
        cfg.update(kwargs or {})
        cfg.update(extra)
        self.socket_path = cfg.get("socket") or os.environ.get("PEERCACHE_SOCKET") or DEFAULT_SOCKET
        self.timeout_s = float(cfg.get("timeout_s", 15.0))
        self.connect_timeout_s = float(cfg.get("connect_timeout_s", min(2.0, self.timeout_s)))
        self.retry_s = float(cfg.get("retry_s", 0.5))
        try:
            self.poll_us = float(cfg.get("poll_us", 0))
        except (TypeError, ValueError):
            self.poll_us = -1.0
        if not 0 <= self.poll_us <= 10000:
            raise ValueError("peercache: poll_us must be 0..10000 (µs of polling around each answer; 0: off), got %r" % cfg.get("poll_us"))
        # SGLang picks batch_get_v1/batch_set_v1 only when bool(extra_config.get("interface_v1", 0)) holds
        # (cache_controller.attach_storage_backend), else batch_get/batch_set: the same test here keeps
        # exists, get and set on the same names whichever SGLang uses.
        self.interface_v1 = bool(cfg.get("interface_v1", 0))
        self.enable_metrics = bool(_cfg(storage_config, "enable_storage_metrics", False))
        self.tp_rank = int(_cfg(storage_config, "tp_rank", 0))
        self.pp_rank = int(_cfg(storage_config, "pp_rank", 0))
        self.pp_size = int(_cfg(storage_config, "pp_size", 1))
        # Attention context parallel (NSA): each CP rank holds a disjoint slice of every page, so each
        # gets its own objects, as SGLang's file backend does (Mooncake's keys omit it: CP ranks would
        # overwrite and read each other's slices).
        self.cp_rank = int(_cfg(storage_config, "attn_cp_rank", 0) or 0)
        self.cp_size = int(_cfg(storage_config, "attn_cp_size", 1) or 1)
        self.is_mla = _cfg(storage_config, "is_mla_model", None)
        model = _cfg(storage_config, "model_name", None)
        # As MooncakeStore: str() of any tag that is not None (0 and "" included), then the model name.
        parts = []
        if cfg.get("extra_backend_tag") is not None:
            parts.append(str(cfg["extra_backend_tag"]))
        if model:
            parts.append("-".join(str(model).split("/")))
        self.key_prefix = ("_".join(parts) + "_") if parts else ""
        if "\n" in self.key_prefix:
            raise ValueError("peercache: model_name and extra_backend_tag must not contain a newline (they prefix every key), got %r" % self.key_prefix)
        self.mem_pool_host = None
        self.multi_range = False
        self.v2_pools = {}  # name -> (host pool, object suffixes, FileSpans or None: staging)
        self.mla_part = self.mha_part = ""
        self.page_size = 0
        self.pool_tokens = None
        self.suffixes = ["__k"]
        self.spans = []  # FileSpan per pool buffer: zero copy
        self.files = {}  # inode -> (fd, file bytes)
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

    # ------------------------------------------------------------ logging and counters

    def _log(self, level, key, message):
        """Logs a reason at most once per 10 s per key (a bad batch every millisecond must not flood)."""
        now = time.monotonic()
        with self._lock:
            last = self._logged.get(key)
            if last is not None and now - last < 10.0:
                return
            self._logged[key] = now
        logger.log(level, "peercache: %s", message)

    def _count(self, **inc):
        with self._lock:
            for k, v in inc.items():
                self._counters[k] += v

    # ------------------------------------------------------------ registration

    def register_mem_pool_host(self, mem_pool_host):
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

    def _object_suffixes(self):
        """Each page's object names end with these (Mooncake's names, plus the CP rank under CP):
        MLA `_k` after the rank part, empty without PP or CP (hence `<hash>__k`); MHA `_k` and `_v`
        after `<tp_rank>[_<pp_rank>][_cp<cp_rank>_<cp_size>]`."""
        rank = [] if self.is_mla else ["%d" % self.tp_rank]
        if self.pp_size > 1:
            rank.append("%d" % self.pp_rank)
        if self.cp_size > 1:
            rank.append("cp%d_%d" % (self.cp_rank, self.cp_size))
        part = "_".join(rank)
        # MooncakeStore's mla_suffix and mha_suffix (with the CP part), which its v2 pool names use too
        self.mla_part = "_".join(([("%d" % self.pp_rank)] if self.pp_size > 1 else []) + ([("cp%d_%d" % (self.cp_rank, self.cp_size))] if self.cp_size > 1 else []))
        self.mha_part = "_".join(["%d" % self.tp_rank] + rank[1:] if self.is_mla else rank)
        return ["_%s_k" % part] if self.is_mla else ["_%s_k" % part, "_%s_v" % part]

    def _describe_pool(self, pool):
        self.page_size = int(getattr(pool, "page_size", 0) or 0)
        if self.page_size <= 0:
            raise BadInput("the host pool has no page_size")
        try:
            self.gb_per_page = float(pool.get_ksize_per_token()) * self.page_size / (1 << 30)
        except Exception:
            self.gb_per_page = 0.0
        size = getattr(pool, "size", None)
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
        spans, files, why = [], {}, None
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

    def register_mem_host_pool_v2(self, host_pool, host_pool_name):
        """A hybrid model's extra pool (indexer, SWA, Mamba, draft, DeepSeek-V4's): served with its own
        page geometry (its get_page_buffer_meta) and MooncakeStore's v2 object names; zero copy when
        its buffers lie in an open memfd, else through the staging memfd."""
        name = str(getattr(host_pool_name, "value", host_pool_name))
        if name == "kv":  # the KV anchor came through register_mem_pool_host
            return
        if not hasattr(self, "registered_pools"):
            self.registered_pools = {}
        self.registered_pools[name] = host_pool
        try:
            suffixes = self._v2_suffixes(name, host_pool)
        except BadInput as e:
            self.v2_pools.pop(name, None)
            self._log(logging.ERROR, "v2-" + name, str(e))
            return
        spans, why = [], None
        for addr, nbytes in self._v2_buffers(host_pool):
            span, reason = find_file_span(addr, nbytes, allocator_fds(host_pool))
            if span is None:
                why = reason
                break
            spans.append(span)
        if not spans:
            why = why or "the pool exposes no buffers"
        if why is None:
            for sp in spans:
                self.files.setdefault(sp.inode, (sp.fd, sp.file_bytes))
        else:
            self._log(logging.WARNING, "v2-staging-" + name, "pool %r is not zero copy, its pages go through the staging memfd: %s" % (name, why))
        self.v2_pools[name] = (host_pool, suffixes, spans if why is None else None)

    @staticmethod
    def _is(pool, *class_names):
        return any(c.__name__ in class_names for c in type(pool).__mro__)

    def _v2_suffixes(self, name, pool):
        """MooncakeStore._get_hybrid_page_component_keys's suffixes, in get_page_buffer_meta's order."""
        mla, mha = self.mla_part, self.mha_part
        if name == "mamba":
            out = ["_%s_conv_%d" % (mha, i) for i in range(len(getattr(pool, "conv_buffer", None) or []))]
            if getattr(pool, "temporal_state_elem_size", 1) > 0:
                out = ["_%s_temporal" % mha] + out
            return out
        if name == "draft":
            if self._is(pool, "MLATokenToKVPoolHost"):
                return ["_%s_draft_k" % mla]
            return ["_%s_draft_k" % mha, "_%s_draft_v" % mha]
        if name == "draft_swa":
            if self._is(pool, "DeepSeekV4PagedHostPool", "MLATokenToKVPoolHost"):
                return ["_%s_%s" % (mla, name)]
            if self._is(pool, "MHATokenToKVPoolHost"):
                return ["_%s_%s_k" % (mha, name), "_%s_%s_v" % (mha, name)]
        if name in ("indexer", "draft_indexer", "deepseek_v4_c4", "deepseek_v4_c4_indexer", "deepseek_v4_c128",
                    "deepseek_v4_c4_state", "deepseek_v4_c4_indexer_state", "deepseek_v4_c128_state"):
            return ["_%s_%s" % (mla, name)]
        if name == "swa":
            if not self.is_mla and hasattr(pool, "v_buffer"):
                return ["_%s_swa_k" % mha, "_%s_swa_v" % mha]
            if self.is_mla:
                return ["_%s_swa" % mla]
        raise BadInput("pool %r (%s) has no object names in MooncakeStore's v2 either: its pages are misses" % (name, type(pool).__name__))

    @staticmethod
    def _v2_buffers(pool):
        """(address, bytes) of each buffer of a v2 pool: get_hybrid_pool_buffer() as MooncakeStore registers them, else kv_buffer."""
        getter = getattr(pool, "get_hybrid_pool_buffer", None)
        bufs = getter() if getter is not None else [getattr(pool, "kv_buffer", None)]
        out = []
        for b in bufs:
            if b is None:
                continue
            try:
                addr, n = buffer_address(b)
            except TypeError:
                continue
            if n:
                out.append((addr, n))
        return out

    # ------------------------------------------------------------ connections

    def _conn(self):
        """This thread's connection (connected, pool registered), or None while the sidecar is unreachable."""
        if self._closed:
            raise ConnectionError("the backend is closed")
        c = getattr(self._local, "conn", None)
        now = time.monotonic()
        # After a pause, a connection the sidecar closed meanwhile (a full node closes the one idle
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
        c = _Conn(client)
        self._local.conn = c
        with self._lock:
            self._conns.add(c)
        if self.zero_copy:
            self._register_files(c)
        return c

    def _register_files(self, c):
        for inode, (fd, nbytes) in self.files.items():
            if inode not in c.file_pools:
                c.file_pools[inode] = c.client.register(fd, nbytes)

    def _staging(self, c, nbytes):
        if c.staging is None or c.staging.nbytes < nbytes:
            if c.staging is not None:
                c.staging.close()
                c.staging = None
            c.staging = Staging(max(nbytes, STAGING_MIN_BYTES))
            c.staging_pool = c.client.register(c.staging.fd, c.staging.nbytes)
        return c.staging

    def _guard(self, what, fn, miss):
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

    # ------------------------------------------------------------ keys and pages

    def _check_keys(self, keys):
        if not isinstance(keys, (list, tuple)):
            raise BadInput("keys must be a list of strings")
        if all(type(k) is str for k in keys) and "" not in keys:
            return
        for i, k in enumerate(keys):
            if not isinstance(k, str) or not k:
                raise BadInput("keys[%d] is not a non-empty string" % i)

    def _names(self, keys, suffixes=None):
        """The batch's object names (prefix + key + each suffix) as one KeyBlob, checking the keys on the way."""
        if not isinstance(keys, (list, tuple)):
            raise BadInput("keys must be a list of strings")
        p, s = self.key_prefix, self.suffixes if suffixes is None else suffixes
        try:
            if len(s) == 1:  # one join in C, no list of names
                text = (p + (s[0] + "\n" + p).join(keys) + s[0]) if keys else ""
            else:
                text = "\n".join([p + k + x for k in keys for x in s])
            blob = text.encode()
        except (TypeError, ValueError):  # a key that is not a str, or not encodable
            self._check_keys(keys)
            raise BadInput("a key is not valid UTF-8 text")
        count = len(keys) * len(s)
        # A newline inside a key would split it in two on the wire (the prefix and suffixes have none).
        if count and ("\n" in "".join(keys) or "" in keys):
            self._check_keys(keys)
            raise BadInput("a key contains a newline")
        return KeyBlob(count, blob)

    def _pages(self, keys, host_indices):
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
        starts = host_indices[::ps]
        starts = starts.tolist() if hasattr(starts, "tolist") else list(starts)
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

    def _meta(self, host_indices, npages):
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

    def _multi_meta(self, host_indices, npages):
        """Each page's ranges [(ptr, bytes), ...] from get_page_buffer_meta (MLA layer_first: one per layer)."""
        ptrs, sizes = self.mem_pool_host.get_page_buffer_meta(host_indices)
        ptrs = ptrs.tolist() if hasattr(ptrs, "tolist") else list(ptrs)
        sizes = [sizes] * len(ptrs) if isinstance(sizes, int) else (sizes.tolist() if hasattr(sizes, "tolist") else list(sizes))
        if not npages or len(ptrs) % npages or len(sizes) != len(ptrs):
            raise BadInput("get_page_buffer_meta gave %d pointers for %d pages" % (len(ptrs), npages))
        k = len(ptrs) // npages
        return [list(zip(ptrs[i * k:(i + 1) * k], sizes[i * k:(i + 1) * k])) for i in range(npages)]

    @staticmethod
    def _packed(sizes):
        offsets, o = [], 0
        for n in sizes:
            offsets.append(o)
            o += n
        return offsets

    def _file_ranges(self, c, host_indices, starts):
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

    def _zero_copy_ranges(self, c, ptrs, sizes):
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
    def _lengths(sizes):
        """One int when every object has the same length (a shorter request), else the list."""
        first = sizes[0]
        return first if sizes.count(first) == len(sizes) else sizes

    @staticmethod
    def _bytes(lengths, objects):
        """Bytes of the first `objects` objects (lengths: one int for all, or the list)."""
        return lengths * objects if isinstance(lengths, int) else sum(lengths[:objects])

    @staticmethod
    def _per_page(bits, comps, npages):
        if "0" not in bits:
            return [True] * npages
        if comps == 1:
            return [ch == "1" for ch in bits]
        return [all(bits[i * comps + j] == "1" for j in range(comps)) for i in range(npages)]

    # ------------------------------------------------------------ v1 (zero copy)

    def batch_exists(self, keys, extra_info=None):
        self._count(exists_calls=1)

        def run(c):
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

    def batch_get_v1(self, keys, host_indices, extra_info=None):
        n = len(keys) if isinstance(keys, (list, tuple)) else 0
        if n and self._kv_anchor_is_logical():
            return [True] * n  # DeepSeek-V4: the KV anchor holds no data (its v2 pools do), as MooncakeStore
        self._count(get_calls=1, get_pages=n)
        t0 = time.monotonic()

        def run(c):
            names, starts = self._pages(keys, host_indices)
            if not names:
                return []
            comps = len(self.suffixes)
            if self.multi_range:
                groups = self._multi_meta(host_indices, len(starts))
                sizes = [sum(n for _, n in g) for g in groups]
                st = self._staging(c, sum(sizes))
                offsets = self._packed(sizes)
                bits = c.client.get(c.staging_pool, names, offsets, sizes)
                copied = 0
                for j, ch in enumerate(bits):
                    if ch == "1":
                        o = st.address + offsets[j]
                        for ptr, nb in groups[j]:
                            ctypes.memmove(ptr, o, nb)
                            o += nb
                        copied += sizes[j]
                self._count(staging_copies=1, staging_bytes=copied)
            elif self.zero_copy:
                pool, offsets, sizes = self._file_ranges(c, host_indices, starts)
                bits = c.client.get(pool, names, offsets, sizes)
            else:
                ptrs, sizes = self._meta(host_indices, len(starts))
                total = sum(sizes)
                st = self._staging(c, total)
                offsets, o = [], 0
                for s in sizes:
                    offsets.append(o)
                    o += s
                bits = c.client.get(c.staging_pool, names, offsets, sizes)
                copied = 0
                for j, ch in enumerate(bits):
                    if ch == "1":
                        ctypes.memmove(ptrs[j], st.address + offsets[j], sizes[j])
                        copied += sizes[j]
                self._count(staging_copies=1, staging_bytes=copied)
            if len(bits) != len(names):
                raise ConnectionError("malformed get answer")
            out = self._per_page(bits, comps, len(keys))
            first_miss = bits.find("0")
            hits = len(out) if first_miss < 0 else first_miss // comps
            self._record("prefetch", len(keys), t0, get_hits=len(out) if first_miss < 0 else sum(out))
            return out

        return self._guard("batch_get_v1", run, [False] * n)

    def batch_set_v1(self, keys, host_indices, extra_info=None):
        n = len(keys) if isinstance(keys, (list, tuple)) else 0
        if n and self._kv_anchor_is_logical():
            return [True] * n  # DeepSeek-V4: the KV anchor holds no data (its v2 pools do), as MooncakeStore
        self._count(set_calls=1, set_pages=n)
        t0 = time.monotonic()

        def run(c):
            names, starts = self._pages(keys, host_indices)
            if not names:
                return []
            if self.is_mla and self.tp_rank != 0:
                # MLA pages are the same on every rank: rank 0 writes them (SGLang skips the others).
                return [True] * len(keys)
            if self.multi_range:
                groups = self._multi_meta(host_indices, len(starts))
                sizes = [sum(n for _, n in g) for g in groups]
            elif self.zero_copy:
                pool, offsets, sizes = self._file_ranges(c, host_indices, starts)
            else:
                ptrs, sizes = self._meta(host_indices, len(starts))
            largest = sizes if isinstance(sizes, int) else max(sizes)
            if self.slot_bytes and largest > self.slot_bytes:
                raise BadInput("objects of %d bytes exceed the sidecar's --slot-bytes %d" % (largest, self.slot_bytes))
            if self.multi_range:
                st = self._staging(c, sum(sizes))
                offsets = self._packed(sizes)
                for j, g in enumerate(groups):
                    o = st.address + offsets[j]
                    for ptr, nb in g:
                        ctypes.memmove(o, ptr, nb)
                        o += nb
                self._count(staging_copies=1, staging_bytes=sum(sizes))
                bits = c.client.set(c.staging_pool, names, offsets, sizes)
            elif self.zero_copy:
                bits = c.client.set(pool, names, offsets, sizes)
            else:
                st = self._staging(c, sum(sizes))
                offsets, o = [], 0
                for p, s in zip(ptrs, sizes):
                    ctypes.memmove(st.address + o, p, s)
                    offsets.append(o)
                    o += s
                self._count(staging_copies=1, staging_bytes=o)
                bits = c.client.set(c.staging_pool, names, offsets, sizes)
            if len(bits) != len(names):
                raise ConnectionError("malformed set answer")
            out = self._per_page(bits, len(self.suffixes), len(keys))
            self._record("backup", len(keys), t0, set_ok=sum(out))
            return out

        return self._guard("batch_set_v1", run, [False] * n)

    def _record(self, kind, pages, t0, **counters):
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

    # ------------------------------------------------------------ v2

    @staticmethod
    def _pool_name(t):
        n = getattr(t, "name", None)
        return str(getattr(n, "value", n))

    def _kv_anchor_is_logical(self):
        """DeepSeek-V4's KV anchor owns indices only; its data is in v2 pools (MooncakeStore: kv_buffer is None)."""
        p = self.mem_pool_host
        return p is not None and getattr(p, "kv_buffer", 0) is None

    def batch_exists_v2(self, keys, pool_transfers=None, extra_info=None):
        """The usable prefix: the KV pages found, cut by each extra pool's hit policy (as MooncakeStore's)."""
        kv = len(keys) if self._kv_anchor_is_logical() and isinstance(keys, (list, tuple)) else self.batch_exists(keys, extra_info)
        hits = {"kv": kv} if kv else {}
        final = kv
        for t in pool_transfers or []:
            if final == 0:
                break
            name = self._pool_name(t)
            page_exists = self._guard("batch_exists_v2", lambda c: self._v2_exists(c, name, keys[:kv]), [False] * kv)
            policy = str(getattr(getattr(t, "hit_policy", None), "value", getattr(t, "hit_policy", "all_pages")))
            boundary = 0
            if policy == "trailing_pages":
                trailing = max(1, len(t.keys) if getattr(t, "keys", None) else 1)
                for prefix in range(kv, 0, -1):
                    if all(page_exists[i] for i in range(max(0, prefix - trailing), prefix)):
                        boundary = prefix
                        break
            else:
                boundary = page_exists.index(False) if False in page_exists else kv
            if boundary:
                hits[name] = boundary
            final = min(final, boundary)
        try:
            return PoolTransferResult(final, hits)
        except Exception:  # an SGLang whose PoolTransferResult takes other arguments
            return PoolTransferResult(kv_hit_pages=final, extra_pool_hit_pages=hits)

    def _v2_pool(self, name):
        entry = self.v2_pools.get(name)
        if entry is None:
            raise BadInput("pool %r was not registered (register_mem_host_pool_v2), or has no object names" % name)
        return entry

    def _v2_exists(self, c, name, keys):
        pool, suffixes, _ = self._v2_pool(name)
        if not keys:
            return []
        names = self._names(keys, suffixes)
        found = c.client.exists(names)
        if len(found) != len(names):
            raise ConnectionError("malformed exists answer")
        k = len(suffixes)
        return [all(found[i * k + j] == "1" for j in range(k)) for i in range(len(keys))]

    def _v2_io(self, c, is_set, name, keys, host_indices):
        pool, suffixes, spans = self._v2_pool(name)
        self._check_keys(keys)
        if not keys:
            return []
        page = int(getattr(pool, "page_size", 1) or 1)
        count = len(host_indices) if host_indices is not None else 0
        if count != len(keys) * page:
            raise BadInput("pool %r: %d host indices for %d pages of %d tokens" % (name, count, len(keys), page))
        names = self._names(keys, suffixes)
        ptrs, sizes = pool.get_page_buffer_meta(host_indices)
        ptrs = ptrs.tolist() if hasattr(ptrs, "tolist") else list(ptrs)
        sizes = [sizes] * len(ptrs) if isinstance(sizes, int) else (sizes.tolist() if hasattr(sizes, "tolist") else list(sizes))
        nobj = len(keys) * len(suffixes)
        if not ptrs or len(ptrs) % nobj or len(sizes) != len(ptrs):
            raise BadInput("pool %r: get_page_buffer_meta gave %d pointers for %d objects" % (name, len(ptrs), nobj))
        per = len(ptrs) // nobj  # ranges per object (DeepSeek-V4's C4 pool: several, as Mooncake's multi-buffer)
        largest = max(sum(sizes[i * per:(i + 1) * per]) for i in range(nobj))
        if is_set and self.slot_bytes and largest > self.slot_bytes:
            raise BadInput("pool %r: objects of %d bytes exceed the sidecar's --slot-bytes %d" % (name, largest, self.slot_bytes))
        if per == 1 and spans:
            pools, offsets = [], []
            for ptr, n in zip(ptrs, sizes):
                sp = next((x for x in spans if x.address <= ptr and ptr + n <= x.end), None)
                if sp is None:
                    raise BadInput("pool %r: a page at 0x%x lies outside its registered buffers" % (name, ptr))
                pools.append(c.file_pools[sp.inode])
                offsets.append(sp.file_offset + (ptr - sp.address))
            pool_arg = pools[0] if len(set(pools)) == 1 else pools
            lengths = self._lengths(sizes)
            bits = (c.client.set if is_set else c.client.get)(pool_arg, names, offsets, lengths)
        else:
            groups = [list(zip(ptrs[i * per:(i + 1) * per], sizes[i * per:(i + 1) * per])) for i in range(nobj)]
            objs = [sum(n for _, n in g) for g in groups]
            st = self._staging(c, sum(objs))
            offsets = self._packed(objs)
            if is_set:
                for j, g in enumerate(groups):
                    o = st.address + offsets[j]
                    for ptr, n in g:
                        ctypes.memmove(o, ptr, n)
                        o += n
                bits = c.client.set(c.staging_pool, names, offsets, objs)
            else:
                bits = c.client.get(c.staging_pool, names, offsets, objs)
                for j, ch in enumerate(bits):
                    if ch == "1":
                        o = st.address + offsets[j]
                        for ptr, n in groups[j]:
                            ctypes.memmove(ptr, o, n)
                            o += n
            self._count(staging_copies=1, staging_bytes=sum(objs))
        if len(bits) != nobj:
            raise ConnectionError("malformed answer")
        return self._per_page(bits, len(suffixes), len(keys))

    def _v2(self, transfers, is_set):
        out = {}
        for t in transfers or []:
            name = self._pool_name(t)
            keys = list(getattr(t, "keys", None) or [])
            indices = getattr(t, "host_indices", None)
            if name == "kv":
                out[name] = (self.batch_set_v1 if is_set else self.batch_get_v1)(keys, indices)
                continue
            what = "batch_%s_v2" % ("set" if is_set else "get")
            out[name] = self._guard(what, lambda c: self._v2_io(c, is_set, name, keys, indices), [False] * len(keys))
        return out

    def batch_get_v2(self, transfers, extra_info=None):
        return self._v2(transfers, False)

    def batch_set_v2(self, transfers, extra_info=None):
        return self._v2(transfers, True)

    # ------------------------------------------------------------ generic (copying) path

    def _generic_suffix(self, part):
        base = self.suffixes[0][:-2] + "_flat" if self.suffixes else "_flat"
        return base if part == 0 else "%s.%d" % (base, part)

    def _generic_parts(self, key, nbytes):
        slot = self.slot_bytes or nbytes
        parts, o, i = [], 0, 0
        while o < nbytes:
            n = min(slot, nbytes - o)
            parts.append((self.key_prefix + key + self._generic_suffix(i), o, n))
            o += n
            i += 1
        return parts

    def _generic_get(self, c, key, target):
        addr, nbytes = buffer_address(target)
        parts = self._generic_parts(key, nbytes)
        st = self._staging(c, nbytes)
        bits = c.client.get(c.staging_pool, [p[0] for p in parts], [p[1] for p in parts], [p[2] for p in parts])
        if bits != "1" * len(parts):
            return None
        ctypes.memmove(addr, st.address, nbytes)
        self._count(staging_copies=1, staging_bytes=nbytes)
        return target

    def _generic_set(self, c, key, value):
        addr, nbytes = buffer_address(value, writable=False)
        parts = self._generic_parts(key, nbytes)
        st = self._staging(c, nbytes)
        ctypes.memmove(st.address, addr, nbytes)
        self._count(staging_copies=1, staging_bytes=nbytes)
        bits = c.client.set(c.staging_pool, [p[0] for p in parts], [p[1] for p in parts], [p[2] for p in parts])
        return bits == "1" * len(parts)

    def get(self, key, target_location=None, target_sizes=None):
        if target_location is None:
            self._log(logging.WARNING, "get-target", "get(%r): needs a target_location (a host tensor) to read into" % (key,))
            return None
        return self._guard("get", lambda c: (self._check_keys([key]), self._generic_get(c, key, target_location))[1], None)

    def batch_get(self, keys, target_locations=None, target_sizes=None):
        n = len(keys) if isinstance(keys, (list, tuple)) else 0
        if target_locations is None or len(target_locations) != n:
            self._log(logging.WARNING, "batch_get-target", "batch_get: needs one target_location per key")
            return [None] * n

        def run(c):
            self._check_keys(keys)
            return [self._generic_get(c, k, t) for k, t in zip(keys, target_locations)]

        return self._guard("batch_get", run, [None] * n)

    def set(self, key, value=None, target_location=None, target_sizes=None):
        src = value if value is not None else target_location
        if src is None:
            return False
        return bool(self._guard("set", lambda c: (self._check_keys([key]), self._generic_set(c, key, src))[1], False))

    def batch_set(self, keys, values=None, target_locations=None, target_sizes=None):
        srcs = values if values is not None else target_locations
        n = len(keys) if isinstance(keys, (list, tuple)) else 0
        if srcs is None or len(srcs) != n:
            return False

        def run(c):
            self._check_keys(keys)
            return all([self._generic_set(c, k, v) for k, v in zip(keys, srcs)])

        return bool(self._guard("batch_set", run, False))

    def exists(self, key):
        def run(c):
            self._check_keys([key])
            return c.client.exists([self.key_prefix + key + self._generic_suffix(0)]) == "1"

        return bool(self._guard("exists", run, False))

    # ------------------------------------------------------------ lifecycle

    def clear(self):
        """Removes every object the local sidecar (this host's node) publishes; other hosts keep theirs
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

    @staticmethod
    def _add_client_counters(counters, client):
        """What a connection counts itself: seconds spent polling, calls through its lane, the events
        it sent because the sidecar was not polling, and those that woke it."""
        counters["poll_seconds"] += client.polled_s
        counters["lane_calls"] += client.lane_calls
        counters["lane_nudges"] += client.lane_nudges
        counters["lane_wakeups"] += client.lane_wakeups

    def get_stats(self):
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

    def adapter_stats(self):
        """This adapter's running counters (not drained): zero copy, geometry, staging copies, polling, errors, reconnects."""
        with self._lock:
            counters = dict(self._counters)
            for c in self._conns:
                self._add_client_counters(counters, c.client)
        return PeerCacheStats(counters)

    def sidecar_stats(self):
        """The sidecar's counters (store stats, connections, pools), or {} when unreachable."""
        return self._guard("stats", lambda c: c.client.stats(), {})

    def close(self):
        self._closed = True
        with self._lock:
            conns = list(self._conns)
            self._conns.clear()
        for c in conns:
            try:
                c.close()
            except Exception:
                pass
