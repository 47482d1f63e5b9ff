"""A host pool larger than 4 GiB (SGLang's usually are): Node 20 cannot make one JS buffer that long,
so the sidecar maps it in one piece for UCX and gives JavaScript overlapping windows. Before that,
registering such a pool crashed the sidecar (a double free in the addon). The file is sparse: only
the pages written here take memory."""
import mmap
import os

import pytest

from conftest import sidecar_pair, unique_keys
from peercache_sglang.client import SidecarClient, SidecarError

GiB = 1 << 30
POOL = 5 * GiB + 12345 * 4096
OBJ = 8192  # the test sidecars' slot size


@pytest.fixture(scope="module", params=["shm", "tcp"])
def big_hosts(request, tmp_path_factory):
    a, b = sidecar_pair(tmp_path_factory.mktemp("pc-big-" + request.param), request.param)
    yield a, b, request.param
    b.stop()
    a.stop()


def pattern(i):
    return bytes((i * 37 + j * 11) % 251 for j in range(256)) * (OBJ // 256)


def test_a_pool_over_4_gib_registers_and_moves_bytes_anywhere_in_it(big_hosts):
    a, b, protocol = big_hosts
    fd = os.memfd_create("big-pool")
    os.ftruncate(fd, POOL)
    mm = mmap.mmap(fd, POOL)
    try:
        ca, cb = SidecarClient(a.sock_path, 20), SidecarClient(b.sock_path, 20)
        ca.connect()
        cb.connect()
        assert ca.hello["slotBytes"] >= OBJ
        if protocol == "tcp":
            # The tcp smoke transport keeps one JS buffer per region: refused with the reason, and
            # the sidecar serves on.
            with pytest.raises(SidecarError, match="longer than one buffer can be"):
                ca.register(fd, POOL)
            assert ca.exists(["nothing"]) == "0"
            return
        pa, pb = ca.register(fd, POOL), cb.register(fd, POOL)
        keys = unique_keys(4)
        # Sources: below 4 GiB, across the 4 GiB line, across a window stride (3 GiB), near the end.
        src = [3 * GiB - OBJ // 2, 4 * GiB - OBJ // 2, 4 * GiB + 7 * OBJ, POOL - OBJ]
        for i, off in enumerate(src):
            mm[off:off + OBJ] = pattern(i)
        assert ca.set(pa, keys, src, OBJ) == "1111"
        # Read back on the other node (a UCX READ into the big pool) and on the same node (the
        # store's own copy into it), at other places, also across the lines.
        for c, p, base in ((cb, pb, 5 * GiB - 8 * OBJ), (ca, pa, 2 * GiB - OBJ // 3)):
            dst = [base + i * (OBJ + 4096) for i in range(4)]
            for off in dst:
                mm[off:off + OBJ] = bytes(OBJ)
            assert c.get(p, keys, dst, OBJ) == "1111"
            for i, off in enumerate(dst):
                assert mm[off:off + OBJ] == pattern(i), "object %d at %d" % (i, off)
        ca.close()
        cb.close()
    finally:
        mm.close()
        os.close(fd)
    assert a.proc.poll() is None and b.proc.poll() is None
