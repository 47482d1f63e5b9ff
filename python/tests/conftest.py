"""Fixtures: real `peercache node` sidecars (two "hosts" on this machine); page_first test pools in harness.py."""
import uuid

import pytest

from harness import (  # noqa: F401  (re-exported for the tests)
    RankConfig, MHAPageFirstPool, MLAPageFirstPool, Sidecar, PageFirstPool, free_port,
)


def sidecar_pair(d, protocol, extra_args=(), **kw):
    """Two started sidecars in directory d: A hosts the directory, B joins it (B also serves /metrics);
    kw: Sidecar's (slot_bytes, segment, ...)."""
    discovery = "127.0.0.1:%d" % free_port()
    a = Sidecar(protocol, discovery, str(d / "a" / "peercache.sock"), str(d / "a.log"), **kw)
    b = Sidecar(protocol, discovery, str(d / "b" / "peercache.sock"), str(d / "b.log"), **kw)
    b.metrics_port = free_port()
    a.extra_args = tuple(extra_args)
    b.extra_args = tuple(extra_args) + ("--metrics-port", str(b.metrics_port))
    a.start()
    try:
        b.start()
    except BaseException:
        a.stop()
        raise
    return a, b


@pytest.fixture(scope="module", params=["shm", "tcp"])
def hosts(request, tmp_path_factory):
    """Two sidecars on one machine: A hosts the directory, B joins it."""
    a, b = sidecar_pair(tmp_path_factory.mktemp("pc-" + request.param), request.param)
    yield a, b
    b.stop()
    a.stop()


LAYOUTS = {"mla": MLAPageFirstPool, "mha": MHAPageFirstPool}


def backend(sock, layout, tp_rank=0, memfd=True, pool=None, pp=(0, 1), cp=(0, 1), **extra):
    """A rank's PeerCacheStorage on `sock` with its host pool registered (a new harness pool unless `pool`);
    pp and cp: (rank, size) of pipeline and attention context parallelism."""
    from peercache_sglang import PeerCacheStorage

    pool = pool if pool is not None else LAYOUTS[layout](memfd=memfd)
    cfg = dict(socket=sock, interface_v1=1, timeout_s=5.0, retry_s=0.1)
    cfg.update(extra)
    s = PeerCacheStorage(RankConfig(layout == "mla", tp_rank=tp_rank, extra=cfg, pp=pp, cp=cp), {})
    s.register_mem_pool_host(pool)
    return s, pool


def unique_keys(n):
    tag = uuid.uuid4().hex[:12]
    return ["%s%04d" % (tag, i) + "0" * 44 for i in range(n)]
