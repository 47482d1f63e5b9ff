"""Idle connections and a full sidecar (`--max-connections`), with the real adapter.

A rank idle between requests (here polling, with a lane) is never closed while the sidecar has room,
however long it waits; connections that say hello and then nothing are closed at the first-request
deadline; when the sidecar is full, a new rank takes the slot of the connection idle longest, and the
rank whose connection that was notices on its next call and reconnects: no miss, no error.
"""
import time

import pytest

from conftest import Sidecar, backend, free_port, unique_keys
from peercache_sglang.client import SidecarClient

PAGES = 8


def _wait(what, seconds, ok):
    end = time.monotonic() + seconds
    while not ok():
        if time.monotonic() > end:
            raise AssertionError("%s: not within %.1f s" % (what, seconds))
        time.sleep(0.02)


def _closed(c):
    """Whether the sidecar closed a raw client's connection (EOF or a fatal error frame waiting)."""
    return c.closed_while_idle()


@pytest.mark.parametrize("protocol", ["shm"])
def test_idle_ranks_and_a_full_sidecar(protocol, tmp_path):
    sidecar = Sidecar(protocol, "127.0.0.1:%d" % free_port(), str(tmp_path / "s" / "peercache.sock"), str(tmp_path / "s.log"))
    sidecar.extra_args = ("--max-connections", "3", "--hello-timeout-ms", "500", "--idle-evict-ms", "1500", "--busy-poll-us", "200")
    sidecar.start()
    rank, pool = backend(sidecar.sock_path, "mla", poll_us=100)
    squatters = []
    try:
        keys = unique_keys(PAGES)
        data = [pool.fill(p) for p in range(PAGES)]
        assert rank.batch_set_v1(keys, pool.indices(range(PAGES))) == [True] * PAGES
        # Idle longer than the hello deadline, with room on the sidecar: kept, no reconnect.
        time.sleep(1.2)
        assert rank.batch_get_v1(keys, pool.indices(range(100, 100 + PAGES))) == [True] * PAGES
        assert [pool.read(100 + p) for p in range(PAGES)] == data
        assert rank.adapter_stats().reconnects == 0

        # Hello and nothing else: closed at the first-request deadline.
        hello_only = [SidecarClient(sidecar.sock_path, 5) for _ in range(2)]
        for c in hello_only:
            c.connect()
        _wait("hello-only connections closed", 5, lambda: all(_closed(c) for c in hello_only))
        for c in hello_only:
            c.close()

        # Two connections that asked once and then sit idle fill the sidecar with the rank.
        time.sleep(0.3)
        for _ in range(2):
            c = SidecarClient(sidecar.sock_path, 5)
            c.connect()
            assert c.exists(["nope"]) == "0"
            squatters.append(c)
        time.sleep(2.0)  # everyone idle past --idle-evict-ms; the rank idle longest
        # A new rank gets in: the rank's connection (idle longest) is closed for it.
        newcomer, npool = backend(sidecar.sock_path, "mla", poll_us=100)
        try:
            assert newcomer.batch_get_v1(keys, npool.indices(range(PAGES))) == [True] * PAGES
            assert [npool.read(p) for p in range(PAGES)] == data
        finally:
            newcomer.close()
            npool.close()
        # The rank notices before its next call and reconnects: every page, no error.
        assert rank.batch_get_v1(keys, pool.indices(range(200, 200 + PAGES))) == [True] * PAGES
        assert [pool.read(200 + p) for p in range(PAGES)] == data
        stats = rank.adapter_stats()
        assert (stats.reconnects, stats.errors) == (1, 0), stats
        assert "closing a connection idle for" in open(sidecar.log_path).read()
    finally:
        for c in squatters:
            c.close()
        rank.close()
        pool.close()
        sidecar.stop()
