"""schema/object-names.json is how a page's objects are named, as data; test/store/object-names.test.ts
checks the TypeScript facade (src/store/keys.ts) against the same file. Here: every vector that applies
to the adapter, through the naming functions and through PeerCacheStorage itself (its config parsed from
an SGLang storage config, the names it would send for a batch). Change a name in the spec and both
suites fail."""
import json
import os
from types import SimpleNamespace

import pytest

from peercache_sglang import PeerCacheStorage
from peercache_sglang.naming import key_prefix, object_names, page_object_names

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
with open(os.path.join(ROOT, "schema", "object-names.json")) as f:
    SPEC = json.load(f)
OURS = [v for v in SPEC["vectors"] if "python" in v["applies_to"]]


def test_the_spec_has_vectors_for_the_adapter():
    assert len(OURS) >= 10
    assert {v["input"]["layout"] for v in OURS} == {"mla", "mha"}
    assert any("extra_backend_tag" in v["input"] for v in OURS) and any(v["input"]["cp_size"] > 1 for v in OURS)


@pytest.mark.parametrize("v", OURS, ids=[v["name"][:60] for v in OURS])
def test_naming_functions(v):
    i = v["input"]
    names = object_names(i["layout"] == "mla", i["tp_rank"], i["pp_rank"], i["pp_size"], i["cp_rank"], i["cp_size"])
    assert page_object_names(key_prefix(i.get("extra_backend_tag"), i.get("model_name")), i["page_key"], names) == v["object_names"]


@pytest.mark.parametrize("v", OURS, ids=[v["name"][:60] for v in OURS])
def test_the_adapter_names_a_batch_so(v):
    i = v["input"]
    extra = {"interface_v1": 1}
    if "extra_backend_tag" in i:
        extra["extra_backend_tag"] = i["extra_backend_tag"]
    storage_config = SimpleNamespace(  # the fields of SGLang's HiCacheStorageConfig the adapter reads
        tp_rank=i["tp_rank"], tp_size=i["tp_size"], pp_rank=i["pp_rank"], pp_size=i["pp_size"],
        attn_cp_rank=i["cp_rank"], attn_cp_size=i["cp_size"], is_mla_model=i["layout"] == "mla",
        model_name=i.get("model_name"), extra_config=extra, enable_storage_metrics=False,
    )
    s = PeerCacheStorage(storage_config)
    try:
        s.suffixes = s._object_suffixes()  # as register_mem_pool_host sets them
        assert s._names([i["page_key"]]).blob.decode().split("\n") == v["object_names"]
        assert s._names([i["page_key"]] * 2).blob.decode().split("\n") == v["object_names"] * 2
    finally:
        s.close()
