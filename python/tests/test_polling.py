"""Polling on both ends (the sidecar's --busy-poll-us, the adapter's poll_us): the same bytes, the
polling counted on both sides, bad settings refused. Times are not asserted (a noisy machine)."""
import pytest

from conftest import RankConfig, backend, sidecar_pair, unique_keys
from peercache_sglang import PeerCacheStorage


@pytest.fixture(scope="module")
def polling_hosts(tmp_path_factory):
    a, b = sidecar_pair(tmp_path_factory.mktemp("pc-poll"), "shm", ("--busy-poll-us", "500"))
    yield a, b
    b.stop()
    a.stop()


def rank(sock, layout, poll_us=200):
    return backend(sock, layout, poll_us=poll_us)


@pytest.mark.parametrize("layout", ["mla", "mha"])
def test_polling_ends_give_the_same_bytes_and_count_their_polling(polling_hosts, layout):
    a, b = polling_hosts
    w, wp = rank(a.sock_path, layout)
    r, rp = rank(b.sock_path, layout)
    keys = unique_keys(16)
    data = {k: wp.fill(p) for k, p in zip(keys, range(16))}
    assert w.batch_set_v1(keys, wp.indices(range(16))) == [True] * 16
    for i in range(30):  # the first call of each size teaches the adapter when its answer is due
        dest = [(16 * i + j) % 280 + 20 for j in range(16)]
        for p in dest:
            rp.zero(p)
        assert r.batch_exists(keys) == 16
        assert r.batch_get_v1(keys, rp.indices(dest)) == [True] * 16
        assert [rp.read(p) for p in dest] == [data[k] for k in keys], "call %d" % i
    assert r.batch_exists(unique_keys(4)) == 0
    st = r.adapter_stats()
    assert st.poll_seconds > 0 and st.errors == 0
    side = r.sidecar_stats()
    assert side["busyPollUs"] == 500 and side["busyPollSeconds"] > 0
    for x in (w, r, wp, rp):
        x.close()


def test_a_newline_in_the_key_prefix_is_a_clear_error_at_construction():
    # The prefix (model name, extra_backend_tag) starts every key on the wire, where '\n' separates keys.
    with pytest.raises(ValueError, match="newline"):
        PeerCacheStorage(RankConfig(True, extra=dict(socket="/nonexistent", extra_backend_tag="a\nb")), {})


def test_no_polling_by_default(polling_hosts):
    _, b = polling_hosts
    r, rp = rank(b.sock_path, "mla", poll_us=0)
    for _ in range(5):
        assert r.batch_exists(unique_keys(4)) == 0
    assert r.adapter_stats().poll_seconds == 0
    r.close()
    rp.close()


@pytest.mark.parametrize("value", [-1, 20000, "fast"])
def test_a_bad_poll_us_is_a_clear_error_at_construction(value):
    with pytest.raises(ValueError, match="poll_us"):
        PeerCacheStorage(RankConfig(True, extra=dict(socket="/nonexistent", poll_us=value)), {})
