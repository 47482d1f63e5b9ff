"""Lanes (src/sidecar/lane.ts): binary calls through a shared-memory file instead of the socket when
the adapter polls. The same bytes whether the sidecar polls (no event frames) or not (an event each
way), no lane without polling, and a lane a client abuses closes that connection only."""
import json
import mmap
import os
import re
import socket
import struct
import threading
import time
import urllib.request

import pytest

from conftest import backend, sidecar_pair, unique_keys
from peercache_sglang import client as wire
from peercache_sglang.client import SidecarClient, SidecarError

HEADER = struct.Struct(">IBBI")


@pytest.fixture(scope="module", params=[500, 0], ids=["sidecar-polls", "sidecar-sleeps"])
def lane_hosts(request, tmp_path_factory):
    a, b = sidecar_pair(tmp_path_factory.mktemp("pc-lane"), "shm", ("--busy-poll-us", str(request.param)))
    yield a, b, request.param
    b.stop()
    a.stop()


@pytest.mark.parametrize("layout", ["mla", "mha"])
def test_calls_through_the_lane_give_every_byte(lane_hosts, layout):
    a, b, busy = lane_hosts
    w, wp = backend(a.sock_path, layout, poll_us=200)
    r, rp = backend(b.sock_path, layout, poll_us=200)
    try:
        keys = unique_keys(32)
        data = {k: wp.fill(p) for k, p in zip(keys, range(32))}
        assert w.batch_set_v1(keys, wp.indices(range(32))) == [True] * 32
        for i in range(40):
            dest = [(32 * i + j) % 250 + 40 for j in range(32)]
            for p in dest:
                rp.zero(p)
            assert r.batch_exists(keys) == 32
            assert r.batch_get_v1(keys, rp.indices(dest)) == [True] * 32
            assert [rp.read(p) for p in dest] == [data[k] for k in keys], "call %d" % i
        assert r.batch_exists(unique_keys(3)) == 0
        # A refused request through the lane is an error answer, and the lane goes on.
        assert r.batch_get_v1(keys[:1], rp.indices([0])) == [True]
        c = r._conn().client
        with pytest.raises(SidecarError, match="not registered"):
            c.get(7, ["k"], [0], 4096)
        assert r.batch_exists(keys) == 32
        st = r.adapter_stats()
        assert st.errors == 0 and st.lane_calls >= 81
        side = r.sidecar_stats()
        assert side["lanes"] >= 1 and side["laneRequests"] >= 81
        text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % b.metrics_port, timeout=5).read().decode()
        assert int(float(re.search(r"^peercache_sidecar_lane_requests_total (\S+)", text, re.M).group(1))) >= 81
        assert int(float(re.search(r"^peercache_sidecar_lanes (\S+)", text, re.M).group(1))) >= 1
        # How often each side found the other polling depends on timing (not asserted); a sidecar
        # that never polls must be woken for every call.
        if not busy:
            assert st.lane_nudges == st.lane_calls, "a sleeping sidecar must be woken for every call"
    finally:
        for x in (w, r, wp, rp):
            x.close()


def test_no_lane_without_polling(lane_hosts):
    _, b, _ = lane_hosts
    r, rp = backend(b.sock_path, "mla", poll_us=0)
    try:
        assert r.batch_exists(unique_keys(4)) == 0
        assert r._conn().client.lane is None and r.adapter_stats().lane_calls == 0
    finally:
        r.close()
        rp.close()


def raw_lane_client(sock_path, magic=wire.LANE_MAGIC, size=wire.LANE_BYTES):
    """A connected client with a lane file registered by hand (fd kept open for tricks)."""
    c = SidecarClient(sock_path, 5)
    c.connect()
    fd = os.memfd_create("lane-test")
    os.ftruncate(fd, size)
    mm = mmap.mmap(fd, size)
    struct.pack_into("<I", mm, 0, magic)
    return c, fd, mm


def wait_closed(c):
    """The sidecar closed the connection (after an error frame): recv gives b'' or an error frame."""
    c.sock.settimeout(5)
    data = b""
    while True:
        chunk = c.sock.recv(65536)
        if not chunk:
            return data
        data += chunk


@pytest.mark.parametrize("abuse", ["too long", "json", "not a lane", "wrong size", "second lane", "shrunk"])
def test_a_lane_a_client_abuses_closes_that_connection_only(lane_hosts, abuse):
    _, b, _ = lane_hosts
    c, fd, mm = raw_lane_client(b.sock_path, magic=0 if abuse == "not a lane" else wire.LANE_MAGIC)
    try:
        lane = {"op": "lane", "pid": os.getpid(), "fd": fd, "bytes": wire.LANE_BYTES}
        if abuse == "not a lane":
            with pytest.raises(SidecarError, match="not a lane"):
                c.call(lane)
            return
        if abuse == "wrong size":
            with pytest.raises(SidecarError, match="lane.bytes"):
                c.call(dict(lane, bytes=4096))
            return
        c.call(lane)
        if abuse == "second lane":
            with pytest.raises(SidecarError, match="has a lane already"):
                c.call(lane)
            return
        if abuse == "shrunk":
            # The sidecar reads a lane past its file's end: it must survive (and see no request).
            mm.close()
            os.ftruncate(fd, 0)
            c.sock.sendall(HEADER.pack(0, 1, wire.KIND_EVENT, 77))
            time.sleep(0.3)
        else:
            payload = b"\x81" + b"\0" * 31 if abuse == "too long" else b'{"op":"stats"}'
            mm[wire.LANE_REQUEST_AT:wire.LANE_REQUEST_AT + len(payload)] = payload
            length = wire.LANE_REQUEST_BYTES + 1 if abuse == "too long" else len(payload)
            struct.pack_into("<I", mm, wire.LANE_REQUEST_LENGTH, length)
            struct.pack_into("<I", mm, wire.LANE_REQUEST_ID, 77)
            c.sock.sendall(HEADER.pack(0, 1, wire.KIND_EVENT, 77))
            assert b"lane request 77" in wait_closed(c)
    finally:
        c.close()
        if not mm.closed:
            mm.close()
        os.close(fd)
    assert b.proc.poll() is None, "the sidecar died"
    # Other clients, and new lanes, are served as before.
    r, rp = backend(b.sock_path, "mla", poll_us=200)
    try:
        assert r.batch_exists(unique_keys(2)) == 0 and r.adapter_stats().lane_calls == 1
    finally:
        r.close()
        rp.close()


def test_a_wake_up_event_that_comes_after_its_answer_is_skipped(tmp_path):
    """The sidecar may send a lane's wake-up event just as the client takes the answer from the lane;
    the event then reaches a later call, JSON or not, which must skip it."""
    path = str(tmp_path / "s.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    c = SidecarClient(path, 5)

    def serve():
        conn, _ = srv.accept()
        with conn:
            for answer in ({"nodeId": "n", "protocol": wire.PROTOCOL, "lanes": False}, {"ok": 1}):
                head = conn.recv(HEADER.size)
                length, _, _, rid = HEADER.unpack(head)
                while length:
                    length -= len(conn.recv(length))
                body = json.dumps(answer).encode()
                if answer == {"ok": 1}:
                    conn.sendall(HEADER.pack(0, 1, wire.KIND_EVENT, 41))  # stale, then the answer
                conn.sendall(HEADER.pack(len(body), 1, wire.KIND_RESPONSE, rid) + body)
            conn.recv(1)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        c.connect()
        assert c.call({"op": "stats"}) == {"ok": 1}
        assert c.connected
    finally:
        c.close()
        srv.close()
        t.join(5)
