"""The adapter's side of socket protocol 2: a sidecar of the other version, malformed answers, keys
the binary layout cannot carry, UTF-8 keys and ranges outside a pool against a real sidecar."""
import json
import logging
import socket
import struct
import threading

import pytest

from conftest import RankConfig, MLAPageFirstPool, unique_keys
from peercache_sglang import PeerCacheStorage
from peercache_sglang.client import PROTOCOL, SidecarClient, SidecarError

HEADER = struct.Struct(">IBBI")


class FakeSidecar(object):
    """A Unix socket that answers each request frame with answer(payload) -> (kind, payload bytes)."""

    def __init__(self, path, answer):
        self.path, self.answer = path, answer
        self.requests = []
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(path)
        self.srv.listen(8)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            try:
                conn, _ = self.srv.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        buf = b""
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                buf += data
                while len(buf) >= HEADER.size:
                    length, _, _, rid = HEADER.unpack_from(buf)
                    if len(buf) < HEADER.size + length:
                        break
                    payload, buf = buf[HEADER.size:HEADER.size + length], buf[HEADER.size + length:]
                    self.requests.append(payload)
                    answer = self.answer(payload)
                    if answer is None:  # the answer function says: hang up without answering
                        return
                    kind, body = answer
                    conn.sendall(HEADER.pack(len(body), 1, kind, rid) + body)

    def close(self):
        self.srv.close()


def hello_ok(protocol=PROTOCOL):
    return 2, json.dumps({"nodeId": "fake", "protocol": protocol, "slotBytes": 1 << 20, "limits": {}}).encode()


def old_sidecar(payload):
    # What a protocol-1 sidecar answers a protocol-2 hello (server.ts of protocol 1).
    return 4, json.dumps({"message": 'protocol "%s" not supported (this sidecar speaks peercache-sidecar/1)' % PROTOCOL, "fatal": True}).encode()


def backend(sock):
    pool = MLAPageFirstPool(memfd=True)
    s = PeerCacheStorage(RankConfig(True, extra=dict(socket=sock, interface_v1=1, timeout_s=2.0, retry_s=0.05)), {})
    s.register_mem_pool_host(pool)
    return s, pool


def test_a_sidecar_of_protocol_1_gives_a_clear_error_and_misses(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="peercache_sglang")
    fake = FakeSidecar(str(tmp_path / "old.sock"), old_sidecar)
    try:
        c = SidecarClient(fake.path, 2.0)
        with pytest.raises(SidecarError) as e:
            c.connect()
        assert e.value.fatal and "this sidecar speaks peercache-sidecar/1" in str(e.value)
        assert not c.connected
        s, pool = backend(fake.path)
        try:
            keys = unique_keys(2)
            assert s.batch_exists(keys) == 0
            assert s.batch_get_v1(keys, pool.indices([0, 1])) == [False, False]
            assert any("peercache-sidecar/1" in m for m in caplog.messages), caplog.messages
        finally:
            s.close()
            pool.close()
    finally:
        fake.close()


def test_a_hello_naming_another_protocol_is_refused_by_the_client(tmp_path):
    fake = FakeSidecar(str(tmp_path / "other.sock"), lambda p: hello_ok("peercache-sidecar/1"))
    try:
        c = SidecarClient(fake.path, 2.0)
        with pytest.raises(SidecarError, match="the sidecar speaks 'peercache-sidecar/1'"):
            c.connect()
        assert not c.connected
    finally:
        fake.close()


@pytest.mark.parametrize("bad", ["op", "count", "empty"])
def test_malformed_binary_answers_are_misses_and_close_the_connection(tmp_path, bad):
    def answer(payload):
        if payload[:1] == b"{":
            return hello_ok()
        n = struct.unpack_from("<I", payload, 4)[0]
        if bad == "op":
            return 2, bytes([0x82 if payload[0] == 0x81 else 0x81]) + b"1" * n
        if bad == "count":
            return 2, payload[:1] + b"1" * (n + 1)
        return 2, b""

    fake = FakeSidecar(str(tmp_path / "bad.sock"), answer)
    try:
        c = SidecarClient(fake.path, 2.0)
        c.connect()
        with pytest.raises(ConnectionError):
            c.exists(["a", "b"])
        assert not c.connected
        s, pool = backend(fake.path)
        try:
            assert s.batch_exists(unique_keys(2)) == 0
            assert s.adapter_stats().errors >= 1
        finally:
            s.close()
            pool.close()
    finally:
        fake.close()


def test_the_binary_request_layout(tmp_path):
    def answer(payload):
        if payload[:1] == b"{":
            return hello_ok()
        return 2, payload[:1] + b"1" * struct.unpack_from("<I", payload, 4)[0]

    fake = FakeSidecar(str(tmp_path / "layout.sock"), answer)
    try:
        c = SidecarClient(fake.path, 2.0)
        c.connect()
        assert c.get(3, ["ab", "é"], [4096, 2 ** 40], 8192) == "11"
        p = fake.requests[-1]
        op, flags, zero, n, deadline, nkey, pool, length = struct.unpack_from("<BBHIQIIQ", p)
        assert (op, flags, zero, n, nkey, pool, length) == (0x82, 0, 0, 2, len("ab\né".encode()), 3, 8192)
        assert deadline > 0
        assert struct.unpack_from("<2Q", p, 32) == (4096, 2 ** 40) and p[48:] == "ab\né".encode()
        assert c.set([1, 2], ["k1", "k2"], [0, 8], [8, 16]) == "11"
        p = fake.requests[-1]
        assert p[0] == 0x83 and p[1] == 3 and struct.unpack_from("<IQ", p, 20) == (0, 0)
        assert struct.unpack_from("<2Q2Q2I", p, 32) == (0, 8, 8, 16, 1, 2) and p[72:] == b"k1\nk2"
        assert c.exists([]) == "" and len(fake.requests[-1]) == 32
        with pytest.raises(ValueError, match="newline"):
            c.exists(["a\nb"])
        with pytest.raises(ValueError, match="0..2\\^64-1"):
            c.get(0, ["a"], [-1], 10)
        with pytest.raises(ValueError, match="2 offsets for 1 keys"):
            c.get(0, ["a"], [1, 2], 10)
    finally:
        fake.close()


def test_utf8_keys_newline_keys_and_ranges_outside_the_pool_on_a_real_sidecar(hosts, caplog):
    a, b = hosts
    caplog.set_level(logging.WARNING, logger="peercache_sglang")
    w, wp = backend(a.sock_path)
    r, rp = backend(b.sock_path)
    try:
        keys = ["clé-%s-ü" % k for k in unique_keys(2)]
        data = [wp.fill(p) for p in (0, 1)]
        assert w.batch_set_v1(keys, wp.indices([0, 1])) == [True, True]
        assert r.batch_exists(keys) == 2
        assert r.batch_get_v1(keys, rp.indices([5, 6])) == [True, True]
        assert [rp.read(5), rp.read(6)] == data
        # A key the binary layout cannot carry: a logged bad input, misses.
        assert r.batch_get_v1(["a\nb"], rp.indices([7])) == [False]
        assert r.batch_exists(["x", "a\nb"]) == 0
        assert any("newline" in m for m in caplog.messages)
        # Straight through the client: a range past the registered pool is refused by the sidecar.
        c = r._conn()
        pool_id = next(iter(c.file_pools.values()))
        span = r.spans[0]
        with pytest.raises(SidecarError, match="lies outside its pool"):
            c.client.get(pool_id, ["k"], [span.file_bytes - 100], 4096)
        assert c.client.connected, "a refused request leaves the connection usable"
        with pytest.raises(SidecarError, match="pool 9 is not registered"):
            c.client.get(9, ["k"], [0], 4096)
        assert r.batch_exists(keys) == 2
    finally:
        for x in (w, r, wp, rp):
            x.close()


def test_polling_never_outlasts_the_deadline(tmp_path):
    """A slow answer teaches the polling client a late due time; the next call's deadline still holds."""
    import time

    answers = iter([2.0])
    released = threading.Event()

    def slow_then_silent(payload):
        if payload[:1] == b"{":
            return hello_ok()
        delay = next(answers, None)
        if delay is None:
            released.wait(30)  # never answers in time; hangs up when the test is over
            return None
        time.sleep(delay)
        n = struct.unpack_from("<I", payload, 4)[0]
        return 2, bytes([payload[0]]) + b"1" * n

    fake = FakeSidecar(str(tmp_path / "fake.sock"), slow_then_silent)
    c = SidecarClient(fake.path, timeout_s=5.0, poll_us=200)
    try:
        c.connect()
        assert c.exists(["a", "b"]) == "11"  # took 2 s: the next exists is "due" in 2 s
        c.timeout_s = 0.3
        t0 = time.monotonic()
        with pytest.raises((OSError, ConnectionError)):
            c.exists(["c", "d"])
        elapsed = time.monotonic() - t0
        assert elapsed < 0.9, "the call waited %.2f s past a 0.3 s deadline" % elapsed
    finally:
        released.set()
        c.close()
        fake.close()
