"""Drives the adapter through SGLang's own code, in a child process that test_sglang_real.py starts
with Debian's torch and PYTHONPATH=python/tests/sglang_path:../shared/sglang:python.

Everything on the path is SGLang's: its device pools and host pools (`"allocator": "shm"`: the memfd
ShmHostTensorAllocator), HiCacheController built with `storage_backend="dynamic"` and the README's
extra config (so StorageBackendFactory imports and creates the adapter), its backup thread
(write_storage -> _page_backup -> batch_set_v1 / batch_set), its prefetch threads (prefetch ->
_storage_hit_query with get_hash_str keys -> batch_exists; then _page_transfer -> batch_get_v1 /
batch_get), get_parallel().override for TP/PP ranks, StorageMetricsCollector for get_stats().
Between the prefetch thread's hit count and the IO thread, this file does what HiRadixCache's
scheduler step does (allocate host pages, hand the operation to prefetch_buffer).

Usage: sglang_driver.py '<json scenario>' ; prints one JSON line per check, then {"done": true}.
"""
import json
import logging
import os
import sys
import threading
import time
import uuid

import torch

from sglang.srt.managers.cache_controller import HiCacheController
from sglang.srt.mem_cache.allocator import TokenToKVPoolAllocator
from sglang.srt.mem_cache.memory_pool import MHATokenToKVPool, MLATokenToKVPool
from sglang.srt.mem_cache.pool_host.mha import MHATokenToKVPoolHost
from sglang.srt.mem_cache.pool_host.mla import MLATokenToKVPoolHost
from sglang.srt.mem_cache.utils import get_hash_str
from sglang.srt.observability.metrics_collector import StorageMetrics, StorageMetricsCollector
from sglang.srt.runtime_context import get_parallel

import sglang.srt.mem_cache.pool_host.base as _pool_host_base  # noqa: E402

# SGLang refuses a host pool unless 10 GiB stay free for the OS (a production sizing rule, checked
# against psutil's available memory); these pools are KiBs and a shared test host may have less free.
_pool_host_base.HICACHE_HOST_MEMORY_RESERVE_BYTES = 0

PAGE = 16
DEVICE_TOKENS = 256
MODEL = "test-org/test-model"


class LogCapture(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines = []

    def emit(self, record):
        try:
            self.lines.append(record.getMessage())
        except Exception:
            pass


LOG = LogCapture()
logging.getLogger().addHandler(LOG)
logging.getLogger().setLevel(logging.INFO)


def out(**kw):
    sys.stdout.write(json.dumps(kw) + "\n")
    sys.stdout.flush()


def extra_config(sock, **over):
    """The README's extra config (docs/sglang.md), on this sidecar."""
    cfg = {"backend_name": "peercache", "module_path": "peercache_sglang", "class_name": "PeerCacheStorage",
           "interface_v1": 1, "allocator": "shm", "socket": sock, "timeout_s": 5, "retry_s": 0.1}
    cfg.update(over)
    return {k: v for k, v in cfg.items() if v is not None}


class Rank(object):
    """One SGLang rank: device pool, memfd host pool and a HiCacheController with the adapter."""

    def _pools(self, kind, layout, layers=4):
        if kind == "mla":
            self.device = MLATokenToKVPool(size=DEVICE_TOKENS, page_size=PAGE, dtype=torch.bfloat16, kv_lora_rank=48,
                                           qk_rope_head_dim=16, layer_num=layers, device="cpu", enable_memory_saver=False)
            host_cls = MLATokenToKVPoolHost
        else:
            self.device = MHATokenToKVPool(size=DEVICE_TOKENS, page_size=PAGE, dtype=torch.bfloat16, head_num=2,
                                           head_dim=32, layer_num=layers, device="cpu", enable_memory_saver=False)
            host_cls = MHATokenToKVPoolHost
        self.host = host_cls(device_pool=self.device, host_to_device_ratio=2.0, host_size=0, page_size=PAGE, layout=layout,
                             pin_memory=False, allocator_type="shm")

    def __init__(self, kind, layout, sock, tp=(0, 1), pp=(0, 1), metrics=True, **extra):
        self._pools(kind, layout)
        allocator = TokenToKVPoolAllocator(size=DEVICE_TOKENS, dtype=torch.bfloat16, device="cpu", kvcache=self.device, need_sort=False)
        with get_parallel().override(tp_rank=tp[0], tp_size=tp[1], pp_rank=pp[0], pp_size=pp[1]):
            self.ctl = HiCacheController(allocator, self.host, PAGE, None, threading.Event(), storage_backend="dynamic",
                                         model_name=MODEL, storage_backend_extra_config=extra_config(sock, **extra),
                                         enable_storage_metrics=metrics)
        self.backend = self.ctl.storage_backend

    def fill(self, pages):
        """Random bytes in these host pages, returned as SGLang's flat page data (get_data_page)."""
        indices = self.host.alloc(pages * PAGE)
        assert indices is not None
        buf = self.host.kv_buffer
        bufs = buf if isinstance(buf, (list, tuple)) else [buf]
        if getattr(self.host, "k_buffer", None) is not None and not isinstance(self.host.k_buffer, (list, tuple)) and buf is None:
            bufs = [self.host.k_buffer, self.host.v_buffer]
        for b in bufs:
            b.view(torch.uint8).view(-1).copy_(torch.randint(0, 256, (b.numel() * b.element_size(),), dtype=torch.uint8))
        return indices

    def pages(self, indices, n):
        return [bytes(self.host.get_data_page(int(indices[i * PAGE]), flat=True).contiguous().view(torch.uint8).numpy().tobytes()) for i in range(n)]

    def backup(self, indices, tokens, timeout=20):
        hashes = get_hash_str(tokens, None, page_size=PAGE)
        op_id = self.ctl.write_storage(indices, tokens, hash_value=hashes)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                op = self.ctl.ack_backup_queue.get(timeout=0.2)
            except Exception:
                continue
            if op.id == op_id:
                return op.completed_tokens // PAGE
        raise AssertionError("backup not acknowledged in %d s" % timeout)

    def prefetch(self, tokens, timeout=20, between=None):
        """SGLang's prefetch: returns (pages found by batch_exists, pages read, the host indices)."""
        op = self.ctl.prefetch(uuid.uuid4().hex, tokens)
        deadline = time.monotonic() + timeout
        got = None
        while time.monotonic() < deadline:
            try:
                got = self.ctl.prefetch_hit_queue.get(timeout=0.2)
            except Exception:
                continue
            if got is op:
                break
        assert got is op, "no hit count in %d s" % timeout
        hit = op.storage_hit_count
        if hit == 0:
            return 0, 0, None
        # HiRadixCache's step: allocate host pages for the hit, hand the operation to the IO thread
        indices = self.host.alloc(hit)
        op.hash_value = op.hash_value[: hit // PAGE]
        op.host_indices = indices
        if between is not None:
            between()
        self.ctl.prefetch_buffer.put(op)
        while time.monotonic() < deadline and op.completed_tokens < hit and not op.is_terminated():
            time.sleep(0.01)
        time.sleep(0.05)
        return hit // PAGE, op.completed_tokens // PAGE, indices

    def close(self):
        try:
            self.ctl._stop_storage_threads()
        except Exception:
            pass
        try:
            self.backend.close()
        except Exception:
            pass


def tokens_for(n_pages, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 50000, (n_pages * PAGE,), generator=g).tolist()


def roundtrip(s):
    """Writers on sidecar A (one per TP rank), readers on sidecar B; every byte compared."""
    kind, layout, tp, pp = s["kind"], s["layout"], s.get("tp", 1), s.get("pp", 1)
    extra = s.get("extra", {})
    n, seed = s.get("pages", 6), s.get("seed", 1)
    tokens = tokens_for(n, seed)
    result = dict(check="roundtrip", kind=kind, layout=layout, tp=tp, pp=pp, extra=extra, ranks=[])
    wants = {}
    for p in range(pp):
        for t in range(tp):
            w = Rank(kind, layout, s["a"], tp=(t, tp), pp=(p, pp), **extra)
            r = Rank(kind, layout, s["b"], tp=(t, tp), pp=(p, pp), **extra)
            try:
                wi = w.fill(n)
                if w.ctl.backup_skip:  # MLA: SGLang backs up from tp rank 0 only; this rank reads rank 0's pages
                    want, written = wants[p], None
                else:
                    want = wants[p] = w.pages(wi, n)
                    written = w.backup(wi, tokens)
                result["ranks"].append(dict(tp=t, pp=p, written=written, skip=w.ctl.backup_skip))
                # a longer request than what is stored: a partial prefix hit
                extra_tokens = tokens + tokens_for(2, seed + 100)
                found, read, ri = r.prefetch(extra_tokens)
                same = [a == b for a, b in zip(want, r.pages(ri, read))] if read else []
                names = getattr(r.backend, "suffixes", None)
                stats = r.backend.get_stats()
                result["ranks"][-1].update(found=found, read=read, same=same, stats_type=type(stats).__name__,
                                           is_storage_metrics=isinstance(stats, StorageMetrics),
                                           prefetch_pgs=list(getattr(stats, "prefetch_pgs", [])), names=names,
                                           zero_copy=r.page_get_func_name if hasattr(r, "page_get_func_name") else r.ctl.page_get_func.__name__)
            finally:
                w.close()
                r.close()
    result["log"] = [l for l in LOG.lines if "peercache" in l][-20:]
    out(**result)


def metrics(s):
    """get_stats() through SGLang's StorageMetricsCollector, as check_hicache_events does on every prefill."""
    collector = StorageMetricsCollector(labels={"model_name": MODEL})
    w = Rank("mla", "page_first", s["a"])
    r = Rank("mla", "page_first", s["b"])
    try:
        tokens = tokens_for(4, 7)
        wi = w.fill(4)
        w.backup(wi, tokens)
        found, read, _ = r.prefetch(tokens)
        error = None
        try:
            stats = r.backend.get_stats()
            collector.log_storage_metrics(stats)
            drained = r.backend.get_stats()
            collector.log_storage_metrics(drained)
        except Exception as e:
            error = "%s: %s" % (type(e).__name__, e)
            stats = drained = None
        hist = collector.histogram_prefetch_pgs.labels(model_name=MODEL)
        sample = {x.name: x.value for m in collector.histogram_prefetch_pgs.collect() for x in m.samples if x.name.endswith("_count")}
        out(check="metrics", found=found, read=read, error=error, prefetch_pgs=getattr(stats, "prefetch_pgs", None),
            prefetch_bandwidth=getattr(stats, "prefetch_bandwidth", None), drained=getattr(drained, "prefetch_pgs", None),
            histogram_count=sum(sample.values()), gb_per_page=r.host.get_ksize_per_token() * PAGE / (1 << 30),
            adapter_gb_per_page=getattr(r.backend, "gb_per_page", None))
        del hist
    finally:
        w.close()
        r.close()
    # metrics off (SGLang's default): SGLang never drains; the adapter must not grow
    r = Rank("mla", "page_first", s["b"], metrics=False)
    try:
        be = r.backend
        keys = ["%064x" % i for i in range(4)]
        for _ in range(s.get("calls", 2000)):
            be.batch_get_v1(keys, torch.arange(0, 4 * PAGE, dtype=torch.int64))
        lists = getattr(be, "_lists", {})
        out(check="metrics_off", recorded=sum(len(v) for v in lists.values()) if isinstance(lists, dict) else None,
            drained=len(be.get_stats().prefetch_pgs))
    finally:
        r.close()


def interface(s):
    """SGLang's default interface_v1 (0: batch_get/batch_set) and an explicit 0 and 1: hits either way."""
    res = []
    for value in s["values"]:
        tokens = tokens_for(4, 11 + len(res))
        w = Rank(s["kind"], "page_first", s["a"], interface_v1=value)
        r = Rank(s["kind"], "page_first", s["b"], interface_v1=value)
        try:
            wi = w.fill(4)
            want = w.pages(wi, 4)
            w.backup(wi, tokens)
            found, read, ri = r.prefetch(tokens)
            same = [a == b for a, b in zip(want, r.pages(ri, read))] if read else []
            res.append(dict(value=value, get=r.ctl.page_get_func.__name__, found=found, read=read, same=same))
        finally:
            w.close()
            r.close()
    warned = [l for l in LOG.lines if "interface_v1" in l and "zero copy" in l]
    out(check="interface", results=res, warned=len(warned))


def tags(s):
    """extra_backend_tag as MooncakeStore reads it (str() of anything not None) and its keys."""
    from sglang.srt.mem_cache.storage.mooncake_store import mooncake_store as mc

    res = []
    for tag in s["tags"]:
        err = None
        prefix = None
        try:
            r = Rank("mla", "page_first", s["b"], extra_backend_tag=tag)
            prefix = r.backend.key_prefix
            r.close()
        except Exception as e:
            err = "%s: %s" % (type(e).__name__, e)
        res.append(dict(tag=tag, prefix=prefix, error=err, mooncake=mooncake_prefix(mc, tag)))
    out(check="tags", results=res)


class MooncakeClient(object):
    """mooncake.store.MooncakeDistributedStore (a C++ extension, not installed): in memory, recording
    the keys MooncakeStore asks about. The only stand-in on these paths; MooncakeStore itself is SGLang's."""

    def __init__(self):
        self.d = {}
        self.asked = []

    def setup(self, *a, **k):
        return 0

    def register_buffer(self, ptr, size):
        return 0

    def put(self, k, v):
        self.d[k] = v
        return 0

    def is_exist(self, k):
        return 1 if k in self.d else 0

    def get(self, k):
        return self.d.get(k)

    def batch_is_exist(self, keys):
        self.asked.extend(keys)
        return [0] * len(keys)


def mooncake_store(tag=None, mla=True, tp=(0, 1), pp=(0, 1)):
    """SGLang's MooncakeStore, built by its own __init__ over MooncakeClient."""
    from sglang.srt.mem_cache.hicache_storage import HiCacheStorageConfig
    from sglang.srt.mem_cache.storage.mooncake_store import mooncake_store as mc

    cfg = HiCacheStorageConfig(tp_rank=tp[0], tp_size=tp[1], pp_rank=pp[0], pp_size=pp[1], attn_cp_rank=0, attn_cp_size=1, is_mla_model=mla,
                               enable_storage_metrics=False, is_page_first_layout=True, model_name=MODEL,
                               extra_config={"master_server_address": "127.0.0.1:1", "extra_backend_tag": tag, "check_server": False})
    orig = mc.MooncakeBaseStore._import_mooncake_store
    mc.MooncakeBaseStore._import_mooncake_store = lambda self: MooncakeClient
    try:
        return mc.MooncakeStore(cfg, None)
    finally:
        mc.MooncakeBaseStore._import_mooncake_store = orig


def mooncake_prefix(mc, tag):
    """MooncakeStore's own key prefix for this tag, from its __init__."""
    try:
        m = mooncake_store(tag)
        return None if m.config_prefix is None else m.config_prefix + "_"
    except Exception as e:
        return "error: %s: %s" % (type(e).__name__, e)


def names(s):
    """Every object name the adapter uses, against MooncakeStore's own for the same keys and rank:
    v1 pages (its batch_exists's query keys) for MLA/MHA, TP and PP ranks, with and without a tag."""
    res = []
    keys = get_hash_str(tokens_for(3, 77), None, page_size=PAGE)
    for kind in ("mla", "mha"):
        for tp, pp in (((0, 1), (0, 1)), ((1, 2), (0, 1)), ((0, 1), (1, 2)), ((1, 2), (1, 2))):
            for tag in (None, 7):
                m = mooncake_store(tag, kind == "mla", tp, pp)
                m.batch_exists(keys)
                r = Rank(kind, "page_first", s["b"], tp=tp, pp=pp, extra_backend_tag=tag)
                try:
                    ours = r.backend._names(keys).blob.decode().split("\n")
                finally:
                    r.close()
                res.append(dict(kind=kind, tp=tp, pp=pp, tag=tag, ours=ours, mooncake=m.store.asked))
    out(check="names", results=res)


def clear(s):
    """SGLang's clear_storage_backend logic (hiradix_cache): success only when clear() does not raise."""
    r = Rank("mla", "page_first", s["b"])
    try:
        ok = True
        try:
            r.backend.clear()
        except Exception as e:
            ok = False
            up_err = str(e)
        else:
            up_err = None
        r.backend.socket_path = "/nonexistent/peercache.sock"  # the sidecar is gone
        r.backend.close()
        r.backend._closed = False
        r.backend._local = threading.local()
        r.backend._next_connect = 0.0
        try:
            r.backend.clear()
            down_ok, down_err = True, None
        except Exception as e:
            down_ok, down_err = False, str(e)
        out(check="clear", up=ok, up_err=up_err, down=down_ok, down_err=down_err)
    finally:
        r.close()


def kill_mid_prefetch(s):
    """The reader's sidecar is killed after batch_exists found the pages and before the reads: misses,
    no exception out of SGLang's threads, and hits again once a sidecar is back on the socket."""
    import signal

    tokens = tokens_for(6, 21)
    w = Rank("mla", "page_first", s["a"])
    r = Rank("mla", "page_first", s["b"])
    try:
        wi = w.fill(6)
        w.backup(wi, tokens)
        found, read, _ = r.prefetch(tokens, between=lambda: os.kill(s["b_pid"], signal.SIGKILL))
        alive = r.ctl.prefetch_io_aux_thread.is_alive() and r.ctl.prefetch_thread.is_alive()
        out(check="kill", found=found, read=read, threads_alive=alive)
    finally:
        w.close()
        r.close()


def _hybrid_rank(kind, sock, extra_name):
    """A hybrid model's rank: SGLang's HybridCacheController over a HostPoolGroup (KV anchor + one extra pool)."""
    from sglang.srt.mem_cache.hicache_storage import PoolName
    from sglang.srt.mem_cache.hybrid_cache.hybrid_cache_controller import HybridCacheController
    from sglang.srt.mem_cache.memory_pool import DSATokenToKVPool
    from sglang.srt.mem_cache.memory_pool_host import HostPoolGroup, PoolEntry
    from sglang.srt.mem_cache.pool_host.dsa import DSAIndexerPoolHost

    if extra_name == "indexer":
        dev = DSATokenToKVPool(size=DEVICE_TOKENS, page_size=PAGE, kv_lora_rank=48, dtype=torch.bfloat16, qk_rope_head_dim=16, layer_num=4,
                               device="cpu", index_head_dim=128, enable_memory_saver=False, kv_cache_dim=64)
        host = MLATokenToKVPoolHost(device_pool=dev, host_to_device_ratio=2.0, host_size=0, page_size=PAGE, layout="page_first",
                                    pin_memory=False, allocator_type="shm")
        xdev, xhost = dev, DSAIndexerPoolHost(dev, host, "page_first", pin_memory=False, allocator_type="shm")
    elif extra_name == "mamba":  # a Mamba2 hybrid: per-request SSM and conv states beside the attention KV
        from sglang.srt.configs.mamba_utils import Mamba2CacheParams, Mamba2StateShape
        from sglang.srt.mem_cache.memory_pool import MambaPool
        from sglang.srt.mem_cache.pool_host.mamba import MambaPoolHost

        r = Rank.__new__(Rank)
        Rank._pools(r, kind, "page_first")
        dev, host = r.device, r.host
        shape = Mamba2StateShape.create(tp_world_size=1, intermediate_size=64, n_groups=1, num_heads=2, head_dim=32, state_size=16, conv_kernel=4)
        xdev = MambaPool(size=16, spec_state_size=0, cache_params=Mamba2CacheParams(shape=shape, layers=[0, 1]), mamba_layer_ids=[0, 1], device="cpu")
        xhost = MambaPoolHost(xdev, 2.0, 0, pin_memory=False, allocator_type="shm", layout="page_first")
    else:
        r = Rank.__new__(Rank)
        Rank._pools(r, kind, "page_first")
        dev, host = r.device, r.host
        x = Rank.__new__(Rank)  # the extra pool: a second KV pool (a draft model's, or SWA's window KV)
        Rank._pools(x, kind, "page_first", layers=2)
        xdev, xhost = x.device, x.host
    name = PoolName(extra_name)
    group = HostPoolGroup([PoolEntry(PoolName.KV, host, dev, lambda l: l, is_primary_index_anchor=True),
                           PoolEntry(name, xhost, xdev, lambda l: l)])
    allocator = TokenToKVPoolAllocator(size=DEVICE_TOKENS, dtype=torch.bfloat16, device="cpu", kvcache=dev, need_sort=False)
    with get_parallel().override(tp_rank=0, tp_size=1, pp_rank=0, pp_size=1):
        ctl = HybridCacheController(allocator, group, PAGE, None, threading.Event(), storage_backend="dynamic", model_name=MODEL,
                                    storage_backend_extra_config=extra_config(sock), enable_storage_metrics=True)
    r = Rank.__new__(Rank)
    r.device, r.host, r.ctl, r.backend, r.extra, r.extra_name = dev, group, ctl, ctl.storage_backend, xhost, name
    return r


def hybrid(s):
    """SGLang's DSA indexer pool wants pages of 64 tokens; the other pools take the driver's 16."""
    global PAGE
    saved, PAGE = PAGE, s.get("page", PAGE)
    try:
        _hybrid(s)
    finally:
        PAGE = saved


def _hybrid(s):
    """v2 (register_mem_host_pool_v2, batch_set_v2 / batch_exists_v2 / batch_get_v2) through SGLang's
    HybridCacheController: KV and the extra pool written on A, found and read on B, every byte compared."""
    from sglang.srt.mem_cache.hicache_storage import PoolTransfer

    kind, extra_name, n = s["kind"], s["pool"], 4
    tokens = tokens_for(n, s.get("seed", 500))
    w = _hybrid_rank(kind, s["a"], extra_name)
    r = _hybrid_rank(kind, s["b"], extra_name)
    try:
        wi = w.host.alloc(n * PAGE)
        for buf in _buffers(w.host.anchor_entry.host_pool) + _buffers(w.extra):
            buf.view(torch.uint8).view(-1).copy_(torch.randint(0, 256, (buf.numel() * buf.element_size(),), dtype=torch.uint8))
        want_kv = [bytes(w.host.get_data_page(int(wi[i * PAGE]), flat=True).contiguous().view(torch.uint8).numpy().tobytes()) for i in range(n)]
        want_x = _extra_pages(w.extra, wi, n) if extra_name != "mamba" else None
        hashes = get_hash_str(tokens, None, page_size=PAGE)
        mamba = extra_name == "mamba"
        if mamba:  # the state after the last page, in its own slot (SGLang's trailing-pages policy)
            from sglang.srt.mem_cache.hicache_storage import PoolHitPolicy

            w_slot = w.extra.alloc(1)
            x_write = PoolTransfer(name=w.extra_name, host_indices=w_slot, keys=hashes[-1:], hit_policy=PoolHitPolicy.TRAILING_PAGES)
            want_x = _slot_bytes(w.extra, w_slot)
        else:
            x_write = PoolTransfer(name=w.extra_name, indices_from_pool=w.extra_name.__class__("kv"))
        op_id = w.ctl.write_storage(wi, tokens, hash_value=hashes, extra_pools=[x_write])
        deadline = time.monotonic() + 20
        done = None
        while time.monotonic() < deadline and done is None:
            try:
                op = w.ctl.ack_backup_queue.get(timeout=0.2)
                done = op if op.id == op_id else None
            except Exception:
                pass
        written = dict(kv=done.completed_tokens // PAGE if done else None, extra=dict(done.pool_storage_result.extra_pool_hit_pages) if done else None)
        # the reader: prefetch with the extra pool; then HiRadixCache's step (allocate, hand to the IO thread)
        if mamba:
            r_slot = r.extra.alloc(1)
            x_read = PoolTransfer(name=r.extra_name, host_indices=r_slot, keys=[None], hit_policy=PoolHitPolicy.TRAILING_PAGES)
        else:
            x_read = PoolTransfer(name=r.extra_name, indices_from_pool=r.extra_name.__class__("kv"))
        op = r.ctl.prefetch(uuid.uuid4().hex, tokens + tokens_for(2, 900), extra_pools=[x_read])
        got = None
        while time.monotonic() < deadline and got is not op:
            try:
                got = r.ctl.prefetch_hit_queue.get(timeout=0.2)
            except Exception:
                pass
        hit = op.storage_hit_count
        ri = r.host.alloc(hit) if hit else None
        if hit:
            op.hash_value = op.hash_value[: hit // PAGE]
            op.host_indices = ri
            r.ctl.prefetch_buffer.put(op)
            while time.monotonic() < deadline and not (op.completed_tokens >= hit and op.pool_transfers_done) and not op.is_terminated():
                time.sleep(0.01)
        read = op.completed_tokens // PAGE
        same_kv = [a == b for a, b in zip(want_kv, [bytes(r.host.get_data_page(int(ri[i * PAGE]), flat=True).contiguous().view(torch.uint8).numpy().tobytes()) for i in range(read)])] if read else []
        if mamba:
            same_x = [_slot_bytes(r.extra, r_slot)[0] == want_x[0]] * n if read else []
        else:
            same_x = [a == b for a, b in zip(want_x, _extra_pages(r.extra, ri, read))] if read else []
        out(check="hybrid", kind=kind, pool=extra_name, written=written, found=hit // PAGE, read=read,
            extra_read=dict(op.pool_storage_result.extra_pool_hit_pages), same_kv=same_kv, same_extra=same_x,
            names=r.backend.v2_pools[extra_name][1] if hasattr(r.backend, "v2_pools") and extra_name in r.backend.v2_pools else None,
            log=[l for l in LOG.lines if "peercache" in l][-5:])
    finally:
        w.close()
        r.close()


def _slot_bytes(pool, slots):
    import ctypes

    ptrs, sizes = pool.get_page_buffer_meta(slots)
    return [b"".join(ctypes.string_at(p, z) for p, z in zip(ptrs, sizes))]


def _buffers(pool):
    if hasattr(pool, "get_hybrid_pool_buffer"):
        return [b for b in pool.get_hybrid_pool_buffer() if b is not None]
    return [pool.kv_buffer]


def _extra_pages(pool, indices, n):
    """The extra pool's bytes of each page, read through its own get_page_buffer_meta."""
    import ctypes

    if not n:
        return []
    ptrs, sizes = pool.get_page_buffer_meta(indices[: n * PAGE])
    per = len(ptrs) // n
    return [b"".join(ctypes.string_at(p, z) for p, z in zip(ptrs[i * per:(i + 1) * per], sizes[i * per:(i + 1) * per])) for i in range(n)]


def main():
    s = json.loads(sys.argv[1])
    for step in s["steps"]:
        step = dict(s, **step)
        globals()[step["do"]](step)
    out(done=True)


if __name__ == "__main__":
    main()
