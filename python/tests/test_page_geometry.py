"""The page formula (geometry.py): used only where the pool's own get_page_buffer_meta agrees with it.

A get of pages the writer published lands in the bytes the pool's get_page_buffer_meta names, whether
the adapter computed the offsets (linear pools), asked the pool (pools the probe rejects), or found
out at a recheck that the pool's answer changed.
"""
import ctypes

import pytest

from conftest import LAYOUTS, backend, unique_keys
from peercache_sglang.geometry import RECHECK_EVERY


def counting(pool):
    """Counts the pool's get_page_buffer_meta calls."""
    real = pool.get_page_buffer_meta
    pool.meta_calls = 0

    def meta(indices):
        pool.meta_calls += 1
        return real(indices)

    pool.get_page_buffer_meta = meta
    return pool


def remapped(pool, where):
    """The pool's pages in another order: page p's objects are where the linear layout puts page where(p)."""
    real = pool.get_page_buffer_meta

    def meta(indices):
        firsts = indices[:: pool.page_size]
        firsts = firsts.tolist() if hasattr(firsts, "tolist") else list(firsts)
        moved = []
        for t in firsts:
            p = where(t // pool.page_size)
            moved.extend(range(p * pool.page_size, (p + 1) * pool.page_size))
        return real(moved)

    pool.get_page_buffer_meta = meta
    return pool


def read_as_the_pool_says(pool, page):
    ptrs, sizes = pool.get_page_buffer_meta(pool.indices([page]))
    return [ctypes.string_at(p, n) for p, n in zip(ptrs, sizes)]


def rank(sock, layout, pool):
    return backend(sock, layout, pool=pool)[0]


@pytest.fixture(params=["mla", "mha"])
def layout(request):
    return request.param


def publish(hosts, layout, n):
    a, _ = hosts
    wp = LAYOUTS[layout]()
    w = rank(a.sock_path, layout, wp)
    keys = unique_keys(n)
    data = {k: wp.fill(p) for k, p in zip(keys, range(n))}
    assert w.batch_set_v1(keys, wp.indices(range(n))) == [True] * n
    w.close()
    wp.close()
    return keys, data


def test_linear_pool_is_asked_once_per_recheck_and_every_byte_lands(hosts, layout):
    keys, data = publish(hosts, layout, 4)
    rp = counting(LAYOUTS[layout]())
    r = rank(hosts[1].sock_path, layout, rp)
    probe_calls = rp.meta_calls
    assert r.adapter_stats().geometry is True
    calls = 2 * RECHECK_EVERY + 1
    for i in range(calls):
        dest = [(4 * i + j) % 200 + 10 for j in range(4)]
        for p in dest:
            rp.zero(p)
        assert r.batch_get_v1(keys, rp.indices(dest)) == [True] * 4
        assert [rp.read(p) for p in dest] == [data[k] for k in keys], "call %d" % i
    # the first call and every RECHECK_EVERY-th ask the pool; the others use the formula
    assert rp.meta_calls - probe_calls == 3
    st = r.adapter_stats()
    assert st.geometry is True and st.geometry_mismatches == 0
    r.close()
    rp.close()


def test_a_pool_off_the_formula_is_asked_on_every_batch(hosts, layout):
    keys, data = publish(hosts, layout, 4)
    # 320 pages: linear below page 100 (pages 0 and 1 look right), rotated above
    rp = counting(remapped(LAYOUTS[layout](), lambda p: p if p < 100 else 100 + (p - 100 + 50) % 220))
    r = rank(hosts[1].sock_path, layout, rp)
    assert r.adapter_stats().geometry is False
    for i in range(3):
        dest = [150 + 4 * i + j for j in range(4)]
        before = rp.meta_calls
        assert r.batch_get_v1(keys, rp.indices(dest)) == [True] * 4
        assert rp.meta_calls == before + 1
        assert [read_as_the_pool_says(rp, p) for p in dest] == [data[k] for k in keys]
    r.close()
    rp.close()


def test_a_pool_that_changes_after_registration_is_caught_at_the_recheck(hosts, layout, caplog):
    keys, data = publish(hosts, layout, 4)
    rp = LAYOUTS[layout]()
    r = rank(hosts[1].sock_path, layout, rp)
    assert r.adapter_stats().geometry is True
    remapped(rp, lambda p: (p + 3) % 320)  # the formula probed at registration no longer holds
    dest = [40, 41, 42, 43]
    assert r.batch_get_v1(keys, rp.indices(dest)) == [True] * 4  # the first call is a recheck
    assert [read_as_the_pool_says(rp, p) for p in dest] == [data[k] for k in keys]
    st = r.adapter_stats()
    assert st.geometry is False and st.geometry_mismatches == 1
    assert "no longer matches" in caplog.text
    dest = [60, 61, 62, 63]
    assert r.batch_get_v1(keys, rp.indices(dest)) == [True] * 4  # asked from now on
    assert [read_as_the_pool_says(rp, p) for p in dest] == [data[k] for k in keys]
    r.close()
    rp.close()
