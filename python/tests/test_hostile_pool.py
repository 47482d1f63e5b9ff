"""A client that shrinks its pool's file after registering it must not crash the sidecar.

The sidecar maps a client's memfd MAP_SHARED; SGLang creates it without MFD_ALLOW_SEALING, so it
cannot be sealed against shrinking. A page the file no longer covers raises SIGBUS at the first
touch: here by the READ that lands in the pool (get) and by the copy that publishes from it (set).
"""
import os

import pytest

from conftest import backend, sidecar_pair, unique_keys
from peercache_sglang.client import SidecarClient, SidecarError

PAGES = 8


@pytest.fixture(params=["shm", "tcp"])
def own_hosts(request, tmp_path):
    """Sidecars for this test alone: a crash here must not take the other tests' sidecars with it."""
    a, b = sidecar_pair(tmp_path, request.param)
    yield a, b
    b.stop()
    a.stop()


def published(sidecar, n):
    """n pages published on `sidecar` by a well-behaved rank: (keys, object names, object bytes, page bytes)."""
    w, wp = backend(sidecar.sock_path, "mla")
    keys = unique_keys(n)
    data = [wp.fill(p) for p in range(n)]
    assert w.batch_set_v1(keys, wp.indices(range(n))) == [True] * n
    names = [w.key_prefix + k + w.suffixes[0] for k in keys]
    size = wp.object_bytes
    w.close()
    wp.close()
    return keys, names, size, data


@pytest.mark.parametrize("op", ["get", "set"])
@pytest.mark.parametrize("cut", ["to zero", "to half a page"])
def test_a_pool_shrunk_after_registration_cannot_crash_the_sidecar(own_hosts, op, cut):
    a, b = own_hosts
    keys, names, size, data = published(a, PAGES)
    fd = os.memfd_create("hostile-pool")
    try:
        os.ftruncate(fd, PAGES * size)
        c = SidecarClient(b.sock_path, 10)
        c.connect()
        pool = c.register(fd, PAGES * size)
        os.ftruncate(fd, 0 if cut == "to zero" else size // 2)
        offsets = [i * size for i in range(PAGES)]
        fresh = ["hostile-%s-%d" % (keys[0], i) for i in range(PAGES)]
        with pytest.raises(SidecarError, match="shrank"):
            if op == "get":
                c.get(pool, names, offsets, size)
            else:
                c.set(pool, fresh, offsets, size)
        assert b.proc.poll() is None, "the sidecar died: %s" % open(b.log_path).read()[-1500:]
        # The pool is gone for good, the connection and the sidecar serve on.
        with pytest.raises(SidecarError, match="shrank|not registered"):
            c.get(pool, names[:1], [0], size)
        assert c.exists(names) == "1" * PAGES
        c.close()
    finally:
        os.close(fd)
    # Nothing was published from the shrunk pool, and a well-behaved rank still reads every byte.
    r, rp = backend(b.sock_path, "mla")
    try:
        assert r.batch_exists(keys) == PAGES
        assert r.batch_get_v1(keys, rp.indices(range(PAGES))) == [True] * PAGES
        assert [rp.read(p) for p in range(PAGES)] == data
        c = SidecarClient(b.sock_path, 10)
        c.connect()
        assert c.exists(["hostile-%s-%d" % (keys[0], i) for i in range(PAGES)]) == "0" * PAGES
        c.close()
    finally:
        r.close()
        rp.close()
    assert b.proc.poll() is None
