"""schema/sidecar-wire.json is the sidecar protocol as data; test/sidecar/wire-spec.test.ts checks the
TypeScript side against the same file. Here: the adapter's frame header, binary request header, op
codes, flags and lane layout, and the codes a real sidecar's error frames carry reaching SidecarError.
Change a field in the spec and both suites fail."""
import json
import os
import struct

import pytest

from peercache_sglang import client
from peercache_sglang.client import SidecarClient, SidecarError
from harness import Sidecar, free_port

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
with open(os.path.join(ROOT, "schema", "sidecar-wire.json")) as f:
    SPEC = json.load(f)

_CODES = {"u8": "B", "u16": "H", "u32": "I", "u64": "Q"}


def _struct_of(fields, byte_order):
    """The struct the spec's field table describes (fields in offset order, no padding allowed)."""
    fmt = (">" if byte_order == "big" else "<") + "".join(_CODES[f["type"]] for f in sorted(fields, key=lambda f: f["offset"]))
    at = 0
    for f in sorted(fields, key=lambda f: f["offset"]):
        assert f["offset"] == at, "field %s at %d, expected %d" % (f["name"], f["offset"], at)
        at += struct.calcsize("<" + _CODES[f["type"]])
    return fmt


def test_frame_header_is_the_spec():
    frame = SPEC["frame"]
    assert client.PROTOCOL == SPEC["protocol"]
    assert client.FRAME_VERSION == frame["version"]
    assert client._HEADER.format == _struct_of(frame["fields"], frame["byte_order"])
    assert client._HEADER.size == frame["header_bytes"]
    kinds = frame["kinds"]
    assert (client.KIND_REQUEST, client.KIND_RESPONSE, client.KIND_EVENT, client.KIND_ERROR) == (
        kinds["request"], kinds["response"], kinds["event"], kinds["error"])


def test_binary_request_header_is_the_spec():
    b = SPEC["binary_request"]
    assert client._BIN.format == b["python_struct"] == _struct_of(b["fields"], b["byte_order"])
    assert client._BIN.size == b["header_bytes"]
    assert (client.OP_EXISTS, client.OP_GET, client.OP_SET) == (b["ops"]["exists"], b["ops"]["get"], b["ops"]["set"])
    assert (client.FLAG_PER_KEY_POOLS, client.FLAG_PER_KEY_LENGTHS) == (b["flags"]["per_key_pools"], b["flags"]["per_key_lengths"])
    assert client.SidecarClient._keys_blob(["a", "b"]) == b["key_separator"].join(["a", "b"]).encode()


def test_lane_layout_is_the_spec():
    lane, o = SPEC["lane"], SPEC["lane"]["offsets"]
    assert client.LANE_MAGIC == lane["magic"] == struct.unpack("<I", b"PCL1")[0]
    assert (client.LANE_REQUEST_ID, client.LANE_REQUEST_LENGTH) == (o["request_id"], o["request_length"])
    assert (client.LANE_CLIENT_POLLS_UNTIL, client.LANE_SIDECAR_POLLS_UNTIL) == (o["client_polls_until"], o["sidecar_polls_until"])
    assert (client.LANE_ANSWER_ID, client.LANE_ANSWER_LENGTH, client.LANE_ANSWER_KIND) == (o["answer_id"], o["answer_length"], o["answer_kind"])
    assert (client.LANE_REQUEST_AT, client.LANE_REQUEST_BYTES, client.LANE_ANSWER_BYTES) == (o["request_at"], lane["request_bytes"], lane["answer_bytes"])
    assert client.LANE_BYTES == lane["total_bytes"]
    assert client.LANE_MARGIN_NS == lane["margin_ns"]


@pytest.fixture(scope="module")
def sidecar(tmp_path_factory):
    d = tmp_path_factory.mktemp("pc-wire")
    s = Sidecar("tcp", "127.0.0.1:%d" % free_port(), str(d / "s" / "peercache.sock"), str(d / "s.log"))
    s.start()
    yield s
    s.stop()


def test_error_frames_carry_the_spec_codes(sidecar):
    c = SidecarClient(sidecar.sock_path, 5.0)
    c.connect()
    try:
        with pytest.raises(SidecarError) as bad:
            c.call({"op": "exists", "keys": "not-a-list"})
        assert (bad.value.code, bad.value.fatal) == ("ERR_BAD_REQUEST", False)
        with pytest.raises(SidecarError) as gone:
            c.get(7, ["k"], [0], 8)
        assert (gone.value.code, gone.value.fatal) == ("ERR_POOL_GONE", False)
        for e in (bad.value, gone.value):
            assert e.code in SPEC["error_codes"], e.code
    finally:
        c.close()
