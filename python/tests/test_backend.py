"""PeerCacheStorage against two real sidecars (shm and tcp): every byte checked, SGLang's contracts."""
import ctypes
import logging
import mmap
import os
import re
import threading
import time
import urllib.request

import pytest

from conftest import backend, unique_keys
from harness import RankConfig

try:
    import numpy as np
except ImportError:  # numpy is optional: lists are what is always accepted
    np = None



@pytest.fixture(params=["mla", "mha"])
def pair(request, hosts):
    """A writer rank on host A and a reader rank on host B, same layout."""
    a, b = hosts
    w, wp = backend(a.sock_path, request.param)
    r, rp = backend(b.sock_path, request.param)
    yield w, wp, r, rp
    w.close()
    r.close()
    wp.close()
    rp.close()


def write_pages(w, wp, keys, pages):
    data = {k: wp.fill(p) for k, p in zip(keys, pages)}
    ok = w.batch_set_v1(keys, wp.indices(pages))
    assert ok == [True] * len(keys)
    return data


def test_set_exists_get_across_nodes_every_byte(pair):
    w, wp, r, rp = pair
    keys = unique_keys(8)
    data = write_pages(w, wp, keys, range(8))
    assert w.adapter_stats().zero_copy is True
    assert r.batch_exists(keys) == 8
    dest = [100 + 3 * i for i in range(8)]  # other slots than the writer's
    got = r.batch_get_v1(keys, rp.indices(dest))
    assert got == [True] * 8
    for k, p in zip(keys, dest):
        assert rp.read(p) == data[k], "page of %s differs" % k
    # numpy host indices (what SGLang's tensors look like to .tolist()) work the same
    if np is not None:
        for p in dest:
            rp.zero(p)
        assert r.batch_get_v1(keys, np.array(rp.indices(dest), dtype=np.int64)) == [True] * 8
        assert all(rp.read(p) == data[k] for k, p in zip(keys, dest))
    st = r.adapter_stats()
    assert st.get_hits >= 8 and st.staging_copies == 0
    assert r.get_stats().prefetch_pgs and r.get_stats().prefetch_pgs == []  # drained on each call


def test_batch_exists_is_a_prefix_count(pair):
    w, wp, r, rp = pair
    keys = unique_keys(10)
    write_pages(w, wp, keys[:5] + keys[6:], [0, 1, 2, 3, 4, 6, 7, 8, 9])
    assert r.batch_exists(keys) == 5
    assert r.batch_exists(keys[5:]) == 0
    assert r.batch_exists(keys[6:]) == 4
    assert r.batch_exists([]) == 0


def test_partial_hits(pair):
    w, wp, r, rp = pair
    keys = unique_keys(4)
    data = write_pages(w, wp, [keys[0], keys[2]], [10, 12])
    got = r.batch_get_v1(keys, rp.indices([40, 41, 42, 43]))
    assert got == [True, False, True, False]
    assert rp.read(40) == data[keys[0]] and rp.read(42) == data[keys[2]]


def test_128_page_batches(pair):
    w, wp, r, rp = pair
    keys = unique_keys(128)
    data = write_pages(w, wp, keys, range(128))
    assert r.batch_exists(keys) == 128
    dest = list(range(150, 278))
    assert r.batch_get_v1(keys, rp.indices(dest)) == [True] * 128
    for k, p in zip(keys, dest):
        assert rp.read(p) == data[k]


def test_set_is_write_once_and_mla_rank_nonzero_skips(hosts):
    a, _ = hosts
    w, wp = backend(a.sock_path, "mla", tp_rank=1)
    try:
        keys = unique_keys(2)
        wp.fill(0)
        wp.fill(1)
        assert w.batch_set_v1(keys, wp.indices([0, 1])) == [True, True]
        assert w.batch_exists(keys) == 0  # MLA: only tp rank 0 writes
    finally:
        w.close()
        wp.close()


@pytest.mark.parametrize("layout", ["mla", "mha"])
def test_each_context_parallel_rank_reads_back_its_own_slice(hosts, layout):
    # Under attention CP each rank holds a different slice of every page: the same page hash must
    # name a different object per CP rank, or one rank would read another's bytes.
    a, b = hosts
    ranks = [backend(a.sock_path, layout, cp=(r, 2)) for r in (0, 1)]
    readers = [backend(b.sock_path, layout, cp=(r, 2)) for r in (0, 1)]
    plain, plain_pool = backend(b.sock_path, layout)
    try:
        keys = unique_keys(3)
        data = [write_pages(w, wp, keys, range(10 * r, 10 * r + 3)) for r, (w, wp) in enumerate(ranks)]
        assert all(data[0][k] != data[1][k] for k in keys)
        for r, (s, pool) in enumerate(readers):
            assert s.batch_exists(keys) == 3
            assert s.batch_get_v1(keys, pool.indices([40, 41, 42])) == [True] * 3
            assert [pool.read(40 + i) for i in range(3)] == [data[r][k] for k in keys], "CP rank %d got another rank's slice" % r
        assert plain.batch_exists(keys) == 0, "without CP the objects are other names"
        names = ranks[1][0]._object_suffixes()
        assert names == (["_cp1_2_k"] if layout == "mla" else ["_0_cp1_2_k", "_0_cp1_2_v"])
    finally:
        for s, pool in ranks + readers + [(plain, plain_pool)]:
            s.close()
            pool.close()


def test_object_names_follow_sglangs_per_layout_and_rank():
    from peercache_sglang import PeerCacheStorage

    def suffixes(mla, tp=0, pp=(0, 1), cp=(0, 1)):
        s = PeerCacheStorage(RankConfig(mla, tp_rank=tp, extra=dict(socket="/nonexistent"), pp=pp, cp=cp), {})
        return s._object_suffixes()

    assert suffixes(True) == ["__k"]  # Mooncake's MLA name: <hash>__k
    assert suffixes(True, tp=3) == ["__k"]  # rank-replicated
    assert suffixes(True, pp=(1, 2)) == ["_1_k"]
    assert suffixes(False, tp=3) == ["_3_k", "_3_v"]
    assert suffixes(False, tp=3, pp=(1, 2)) == ["_3_1_k", "_3_1_v"]
    assert suffixes(False, tp=3, pp=(1, 2), cp=(1, 4)) == ["_3_1_cp1_4_k", "_3_1_cp1_4_v"]


def test_three_threads_at_once(pair):
    w, wp, r, rp = pair
    base = unique_keys(32)
    data = write_pages(w, wp, base, range(32))
    errors, counts = [], {"exists": 0, "get": 0, "set": 0}
    stop = time.monotonic() + 2.0

    def exists_loop():
        while time.monotonic() < stop:
            n = r.batch_exists(base)
            if n != 32:
                errors.append("exists %r" % n)
            counts["exists"] += 1

    def get_loop():
        dest = list(range(200, 232))
        while time.monotonic() < stop:
            ok = r.batch_get_v1(base, rp.indices(dest))
            if ok != [True] * 32 or any(rp.read(p) != data[k] for k, p in zip(base, dest)):
                errors.append("get %r" % ok)
            counts["get"] += 1

    def set_loop():
        i = 0
        while time.monotonic() < stop:
            ks = unique_keys(4)
            ok = r.batch_set_v1(ks, rp.indices([60 + (i % 4) * 4 + j for j in range(4)]))
            if ok != [True] * 4:
                errors.append("set %r" % ok)
            counts["set"] += 1
            i += 1

    ts = [threading.Thread(target=f) for f in (exists_loop, get_loop, set_loop)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    assert not errors, errors[:5]
    assert all(v > 0 for v in counts.values()), counts


def test_staging_path_for_a_pool_that_is_not_a_memfd(hosts, caplog):
    a, b = hosts
    caplog.set_level(logging.WARNING, logger="peercache_sglang")
    w, wp = backend(a.sock_path, "mha", memfd=False)
    r, rp = backend(b.sock_path, "mha", memfd=False)
    try:
        assert any("staging memfd" in m for m in caplog.messages)
        keys = unique_keys(16)
        data = write_pages(w, wp, keys, range(16))
        assert r.batch_get_v1(keys, rp.indices(range(20, 36))) == [True] * 16
        assert all(rp.read(20 + i) == data[k] for i, k in enumerate(keys))
        st = r.adapter_stats()
        assert st.zero_copy is False and st.staging_copies >= 1 and st.staging_bytes == 16 * 2 * rp.object_bytes
    finally:
        for x in (w, r, wp, rp):
            x.close()


def test_bad_input_gives_false_entries_and_a_logged_reason(hosts, caplog):
    a, _ = hosts
    caplog.set_level(logging.WARNING, logger="peercache_sglang")
    s, pool = backend(a.sock_path, "mla")
    try:
        keys = unique_keys(3)
        # mismatched keys and indices
        assert s.batch_get_v1(keys, pool.indices([0, 1])) == [False] * 3
        assert any("host indices for 3 keys" in m for m in caplog.messages)
        assert s.batch_set_v1(keys, pool.indices([0, 1])) == [False] * 3
        # indices outside the pool
        caplog.clear()
        out = pool.size // pool.page_size
        assert s.batch_get_v1(keys, pool.indices([0, 1, out + 5])) == [False] * 3
        assert any("not a page of the host pool" in m for m in caplog.messages)
        # not page-aligned, negative, not keys at all, None
        assert s.batch_get_v1(keys[:1], list(range(3, 3 + pool.page_size))) == [False]
        assert s.batch_get_v1(keys[:1], [-16] + [0] * (pool.page_size - 1)) == [False]
        # page starts that are not ints: a float, a bool (SGLang's int64 tensors give ints)
        caplog.clear()
        assert s.batch_get_v1(keys[:1], [0.0] * pool.page_size) == [False]
        assert s.batch_get_v1(keys[:1], [False] * pool.page_size) == [False]
        assert sum("not a page of the host pool" in m for m in caplog.messages) == 2
        assert s.batch_get_v1([None, 3], pool.indices([0, 1])) == [False, False]
        assert s.batch_get_v1(keys, None) == [False] * 3
        assert s.batch_exists([1, 2]) == 0
        assert s.batch_exists("abc") == 0
        assert s.adapter_stats().bad_inputs >= 7
    finally:
        s.close()
        pool.close()


def test_unreachable_sidecar_gives_misses_within_the_deadline(tmp_path):
    s, pool = backend(str(tmp_path / "nobody.sock"), "mha")
    try:
        t0 = time.monotonic()
        assert s.batch_exists(unique_keys(3)) == 0
        assert s.batch_get_v1(unique_keys(2), pool.indices([0, 1])) == [False, False]
        assert s.batch_set_v1(unique_keys(2), pool.indices([0, 1])) == [False, False]
        assert s.exists("k") is False and s.get("k", bytearray(10)) is None and s.set("k", b"x") is False
        assert s.batch_get(["k"], [bytearray(4)]) == [None] and s.batch_set(["k"], [b"abcd"]) is False
        with pytest.raises(RuntimeError, match="clear failed"):
            s.clear()  # the sidecar is down: SGLang must not log "cleared"
        assert s.get_stats() is not None
        assert time.monotonic() - t0 < 5
    finally:
        s.close()
        pool.close()


def test_v2_kv_pool_works_an_unregistered_pool_is_logged_misses(pair, caplog):
    w, wp, r, rp = pair
    caplog.set_level(logging.WARNING, logger="peercache_sglang")

    class T(object):
        def __init__(self, name, keys, host_indices):
            self.name, self.keys, self.host_indices = name, keys, host_indices

    keys = unique_keys(3)
    data = {k: wp.fill(p) for k, p in zip(keys, [0, 1, 2])}
    res = w.batch_set_v2([T("kv", keys, wp.indices([0, 1, 2]))])
    assert res == {"kv": [True] * 3}
    assert r.batch_exists_v2(keys).kv_hit_pages == 3
    got = r.batch_get_v2([T("kv", keys, rp.indices([5, 6, 7])), T("mamba", keys[-1:], None)])
    assert got == {"kv": [True] * 3, "mamba": [False]}
    assert [rp.read(p) for p in (5, 6, 7)] == [data[k] for k in keys]
    assert any("'mamba' was not registered" in m for m in caplog.messages)
    assert r.batch_exists_v2(keys, [T("mamba", keys[-1:], None)]).kv_hit_pages == 0


class _Transfer(object):
    def __init__(self, name, keys, host_indices):
        self.name, self.keys, self.host_indices = name, keys, host_indices


class RangesPool(object):
    """A hybrid model's extra host pool (an indexer's) whose page object is `ranges` ranges apart from
    each other (DeepSeek-V4's C4 pools have several), in anonymous memory or a memfd."""

    page_size = 4

    def __init__(self, ranges, memfd, pages=16, range_bytes=512):
        self.pages, self.ranges, self.range_bytes = pages, ranges, range_bytes
        total = pages * ranges * range_bytes
        self.fd = os.memfd_create("sglang-v2-pool", 0) if memfd else -1
        if memfd:
            os.ftruncate(self.fd, total)
            self.allocator = type("Alloc", (), {"fd": self.fd})()
        self.map = mmap.mmap(self.fd, total, mmap.MAP_SHARED if memfd else mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, mmap.PROT_READ | mmap.PROT_WRITE)
        self._anchor = ctypes.c_char.from_buffer(self.map)
        self.base = ctypes.addressof(self._anchor)
        self.kv_buffer = (self.base, total)

    def _offsets(self, page):
        return [(r * self.pages + page) * self.range_bytes for r in range(self.ranges)]

    def get_page_buffer_meta(self, indices):
        firsts = list(indices)[:: self.page_size]
        ptrs = [self.base + o for t in firsts for o in self._offsets(t // self.page_size)]
        return ptrs, [self.range_bytes] * len(ptrs)

    def indices(self, pages):
        return [t for p in pages for t in range(p * self.page_size, (p + 1) * self.page_size)]

    def fill(self, page):
        data = os.urandom(self.ranges * self.range_bytes)
        for i, o in enumerate(self._offsets(page)):
            self.map[o:o + self.range_bytes] = data[i * self.range_bytes:(i + 1) * self.range_bytes]
        return data

    def read(self, page):
        return b"".join(bytes(self.map[o:o + self.range_bytes]) for o in self._offsets(page))

    def close(self):
        self._anchor = None
        self.map.close()
        if self.fd >= 0:
            os.close(self.fd)


@pytest.mark.parametrize("ranges,memfd", [(1, False), (3, True)], ids=["anonymous", "3-ranges"])
def test_v2_pool_through_the_staging_memfd_round_trips_byte_exact(hosts, ranges, memfd):
    """A v2 pool the sidecar cannot map, or whose objects are several ranges, goes through the staging
    memfd: gathered to set, scattered back after get, only the hits copied (and counted)."""
    a, b = hosts
    w, wp = backend(a.sock_path, "mla")
    r, rp = backend(b.sock_path, "mla")
    wpool, rpool = RangesPool(ranges, memfd), RangesPool(ranges, memfd)
    try:
        w.register_mem_host_pool_v2(wpool, "indexer")
        r.register_mem_host_pool_v2(rpool, "indexer")
        keys = unique_keys(3)
        data = [wpool.fill(p) for p in (0, 1, 2)]
        assert w.batch_set_v2([_Transfer("indexer", keys, wpool.indices([0, 1, 2]))]) == {"indexer": [True] * 3}
        before = r.adapter_stats()
        got = r.batch_get_v2([_Transfer("indexer", keys + unique_keys(1), rpool.indices([5, 6, 7, 8]))])
        assert got == {"indexer": [True, True, True, False]}
        assert [rpool.read(p) for p in (5, 6, 7)] == data
        assert rpool.read(8) == bytes(ranges * 512)  # a miss writes nothing
        after = r.adapter_stats()
        assert after.staging_copies == before.staging_copies + 1
        assert after.staging_bytes - before.staging_bytes == 3 * ranges * 512
    finally:
        for x in (w, r, wp, rp, wpool, rpool):
            x.close()


def test_generic_get_set_exists(pair):
    w, _, r, _ = pair
    key = unique_keys(1)[0]
    value = bytes(range(256)) * 80  # 20 KiB: more than one 8 KiB slot, stored in parts
    assert w.set(key, value) is True
    assert r.exists(key) is True
    target = bytearray(len(value))
    assert r.get(key, target) is target and bytes(target) == value
    assert r.batch_get([key, key + "x"], [bytearray(len(value)), bytearray(len(value))])[1] is None
    assert r.batch_set(unique_keys(2), [b"a" * 100, b"b" * 100]) is True


def test_generic_set_of_a_read_only_buffer_publishes_its_bytes(pair):
    """A read-only buffer that is not bytes (a read-only memoryview) is copied from memory that lives
    until the copy is done (it was the address of a temporary copy, freed before the copy: a crash for
    one of 256 KiB, whose temporary is unmapped at once)."""
    w, _, r, _ = pair
    key = unique_keys(1)[0]
    value = os.urandom(256 * 1024)
    assert w.set(key, memoryview(value).toreadonly()) is True
    target = bytearray(len(value))
    assert r.get(key, target) is target
    same = bytes(target) == value
    assert same, "the bytes read back are not the bytes published"


def test_sidecar_metrics_and_stats_show_the_traffic(pair, hosts):
    w, wp, r, rp = pair
    _, b = hosts
    keys = unique_keys(4)
    write_pages(w, wp, keys, range(4))
    assert r.batch_get_v1(keys, rp.indices(range(50, 54))) == [True] * 4
    text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % b.metrics_port, timeout=5).read().decode()
    pools = int(float(re.search(r"^peercache_sidecar_pools (\S+)", text, re.M).group(1)))
    read = sum(float(v) for v in re.findall(r"^peercache_pages_read_total\{[^}]*\} (\S+)", text, re.M))
    assert pools >= 1 and read >= 4, (pools, read)
    st = r.sidecar_stats()
    assert st["pools"] >= 1 and st["storeCalls"]["get"]["count"] >= 1


class FakeTensor(object):
    """What the adapter uses of a torch tensor of host indices: len, slicing to a tensor, tolist."""

    def __init__(self, values):
        self._v = list(values)

    def __len__(self):
        return len(self._v)

    def __getitem__(self, item):
        return FakeTensor(self._v[item]) if isinstance(item, slice) else self._v[item]

    def tolist(self):
        return list(self._v)


def test_tensor_like_host_indices(pair):
    w, wp, r, rp = pair
    keys = unique_keys(3)
    data = {k: wp.fill(p) for k, p in zip(keys, [7, 8, 9])}
    assert w.batch_set_v1(keys, FakeTensor(wp.indices([7, 8, 9]))) == [True] * 3
    assert r.batch_get_v1(keys, FakeTensor(rp.indices([1, 3, 5]))) == [True] * 3
    assert [rp.read(p) for p in (1, 3, 5)] == [data[k] for k in keys]
