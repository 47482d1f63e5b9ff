"""The adapter under SGLang's own code (upstream main db570fe, ../shared/sglang): SGLang's
HiCacheController creates it through StorageBackendFactory's dynamic backend from the README's extra
config, its backup and prefetch threads call it, its host pools (memfd ShmHostTensorAllocator) hold
the pages, get_hash_str names them, StorageMetricsCollector takes get_stats(), MooncakeStore is the
naming reference. Two real `peercache node` sidecars: writers on A, readers on B, every byte compared.

One child process (sglang_driver.py, Debian's torch, PYTHONPATH with python/tests/sglang_path's
stand-ins for modules these paths never use) runs every scenario; the tests below read its answers.
Where SGLang's source, Debian's torch or a C++ compiler is missing the tier is skipped, except under
CI=true, where it fails.
"""
import json
import os
import shutil
import subprocess

import pytest

from conftest import sidecar_pair

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))


def _sglang_source() -> str:
    """$PEERCACHE_SGLANG_SRC, else ../shared/sglang beside this checkout, else beside the local
    checkout this one was cloned from (`git clone . "$d"` leaves shared/ behind)."""
    beside = os.path.abspath(os.path.join(ROOT, "..", "shared", "sglang"))
    if os.environ.get("PEERCACHE_SGLANG_SRC"):
        return os.environ["PEERCACHE_SGLANG_SRC"]
    if os.path.isdir(beside):
        return beside
    origin = subprocess.run(["git", "-C", ROOT, "remote", "get-url", "origin"], capture_output=True, text=True)
    url = origin.stdout.strip()
    url = url[len("file://"):] if url.startswith("file://") else url
    if origin.returncode == 0 and os.path.isabs(url):
        cloned_from = os.path.abspath(os.path.join(url, "..", "shared", "sglang"))
        if os.path.isdir(cloned_from):
            return cloned_from
    return beside


SGLANG = _sglang_source()
PYTHON = "/usr/bin/python3"  # Debian's torch lives there, not in other python3s on the PATH


def _missing():
    if not os.path.isfile(os.path.join(SGLANG, "sglang", "srt", "managers", "cache_controller.py")):
        return "SGLang's source is not at %s (set PEERCACHE_SGLANG_SRC)" % SGLANG
    if not os.path.exists(PYTHON) or subprocess.run([PYTHON, "-c", "import torch"], capture_output=True).returncode:
        return "%s has no torch (apt-get install python3-torch)" % PYTHON
    if not shutil.which("g++") or not shutil.which("ninja"):
        return "get_hash_str builds a C++ extension: needs g++ and ninja-build"
    return None


SEED = {"v": 0}


def rt(kind, layout, tp=1, pp=1, **extra):
    SEED["v"] += 10  # pages of different scenarios never share a name
    return dict(do="roundtrip", kind=kind, layout=layout, tp=tp, pp=pp, extra=extra, seed=SEED["v"])


ROUNDTRIPS = [
    rt("mla", "page_first"),
    rt("mla", "page_first_direct"),
    rt("mha", "page_first"),
    rt("mha", "page_first_direct"),
    rt("mha", "page_head"),
    rt("mla", "layer_first"),
    rt("mha", "layer_first"),  # refused, as Mooncake refuses it
    rt("mha", "page_first", tp=2),
    rt("mla", "page_first", tp=2),
    rt("mla", "page_first_direct", pp=2),
    rt("mha", "page_first", tp=2, pp=2),
]
HYBRID = [  # (model kind, extra pool, page size): SGLang's HybridCacheController with a HostPoolGroup
    ("mla", "draft", 16),  # an MLA draft model's KV (EAGLE/MTP)
    ("mha", "draft", 16),
    ("mha", "swa", 16),  # sliding-window layers' KV beside the full-attention KV
    ("mla", "indexer", 64),  # DeepSeek-V3.2's DSA indexer (SGLang's DSA pool wants pages of 64)
    ("mha", "mamba", 16),  # a Mamba2 hybrid: the SSM and conv state after the last page (trailing_pages)
]
STEPS = ROUNDTRIPS + [dict(do="hybrid", kind=k, pool=p, page=pg, seed=1000 + 10 * i) for i, (k, p, pg) in enumerate(HYBRID)] + [
    dict(do="metrics", calls=2000),
    dict(do="interface", kind="mha", values=[None, 0, 1]),
    dict(do="tags", tags=[7, "", 0, "t", None]),
    dict(do="names"),
    dict(do="clear"),
    dict(do="kill_mid_prefetch"),  # last: kills sidecar B
]


@pytest.fixture(scope="module")
def sglang(tmp_path_factory):
    why = _missing()
    if why:
        if os.environ.get("CI") == "true":
            pytest.fail("the SGLang-real-code tier must run under CI: " + why)
        pytest.skip(why)
    a, b = sidecar_pair(tmp_path_factory.mktemp("sglang-real"), "shm", slot_bytes=65536)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(HERE, "sglang_path"), SGLANG, os.path.join(ROOT, "python")]),
               # get_hash_str's C++ extension is built once, into the project's build/ (not ~/.cache)
               TORCH_EXTENSIONS_DIR=os.path.join(ROOT, "build", "torch_extensions"))
    scenario = dict(a=a.sock_path, b=b.sock_path, b_pid=b.proc.pid, steps=STEPS)
    try:
        proc = subprocess.run([PYTHON, os.path.join(HERE, "sglang_driver.py"), json.dumps(scenario)], env=env, cwd=ROOT,
                              capture_output=True, text=True, timeout=240)
    finally:
        b.stop()
        a.stop()
    lines = [json.loads(l) for l in proc.stdout.splitlines() if l.startswith("{")]
    assert lines and lines[-1].get("done"), "the driver failed (exit %s):\n%s" % (proc.returncode, proc.stderr[-4000:])
    return lines[:-1], proc.stderr


def _roundtrip(results, kind, layout, tp=1, pp=1):
    for r in results:
        if r["check"] == "roundtrip" and (r["kind"], r["layout"], r["tp"], r["pp"]) == (kind, layout, tp, pp):
            return r
    raise AssertionError("no result for %s %s tp=%d pp=%d" % (kind, layout, tp, pp))


def _one(results, check):
    return next(r for r in results if r["check"] == check)


SERVED = [(s["kind"], s["layout"], s["tp"], s["pp"]) for s in ROUNDTRIPS if (s["kind"], s["layout"]) != ("mha", "layer_first")]


@pytest.mark.parametrize("kind,layout,tp,pp", SERVED, ids=["%s-%s-tp%d-pp%d" % x for x in SERVED])
def test_every_layout_round_trips_byte_exact_through_sglangs_threads(sglang, kind, layout, tp, pp):
    """Backup thread writes through sidecar A; B's prefetch thread finds the stored prefix of a longer
    request (6 of 8 pages: a partial prefix) and its IO thread reads it; every byte equal, per rank."""
    r = _roundtrip(sglang[0], kind, layout, tp, pp)
    ranks = r["ranks"]
    assert len(ranks) == tp * pp, r
    # MLA: SGLang's backup_skip leaves tp rank 0 writing; every rank reads
    assert [x["skip"] for x in ranks] == [kind == "mla" and x["tp"] != 0 for x in ranks], r
    for x in ranks:
        assert x["written"] == (None if x["skip"] else 6), (x, r["log"])
        assert (x["found"], x["read"]) == (6, 6), (x, r["log"])
        assert x["same"] == [True] * 6, x
        assert x["zero_copy"] == "_page_get_zero_copy"


def test_mha_layer_first_is_refused_with_the_layout_to_use(sglang):
    """Mooncake refuses MHA layer_first ("Use page_first/page_first_direct for MHA"): misses, a logged reason."""
    r = _roundtrip(sglang[0], "mha", "layer_first")
    assert all((x["found"], x["read"]) == (0, 0) for x in r["ranks"]), r
    assert any("layer_first" in l and "page_first" in l for l in r["log"]), r["log"]


def test_get_stats_is_sglangs_storage_metrics_through_its_collector(sglang):
    """--enable-metrics: check_hicache_events hands get_stats() to StorageMetricsCollector, which
    asserts SGLang's StorageMetrics; drained per call; bandwidth as Mooncake counts it."""
    m = _one(sglang[0], "metrics")
    assert m["error"] is None, m["error"]
    assert (m["found"], m["read"]) == (4, 4)
    assert m["prefetch_pgs"] == [4] and m["drained"] == [] and m["histogram_count"] == 1
    assert len(m["prefetch_bandwidth"]) == 1 and m["prefetch_bandwidth"][0] > 0
    # MooncakeStore's unit: pages x gb_per_page (get_ksize_per_token() x page_size, in GiB) over the call
    assert m["adapter_gb_per_page"] == m["gb_per_page"]
    assert m["prefetch_bandwidth"][0] <= 4 * m["gb_per_page"] / 1e-6  # the call took at least a microsecond


def test_metrics_off_records_nothing(sglang):
    """enable_storage_metrics off (SGLang's default): SGLang never calls get_stats, so nothing is kept."""
    m = _one(sglang[0], "metrics_off")
    assert m["recorded"] == 0 and m["drained"] == 0, m


def test_interface_v1_default_and_explicit_values_all_hit(sglang):
    """SGLang's default (no interface_v1: the copying batch_get/batch_set), 0 and 1: exists, get and
    set agree on names, every page hits and every byte is equal; the zero-copy hint is logged."""
    r = _one(sglang[0], "interface")
    got = {x["value"]: x for x in r["results"]}
    assert got[None]["get"] == got[0]["get"] == "_generic_page_get" and got[1]["get"] == "_page_get_zero_copy"
    for x in r["results"]:
        assert (x["found"], x["read"], x["same"]) == (4, 4, [True] * 4), x
    assert r["warned"] >= 1


def test_extra_backend_tag_prefixes_as_mooncake(sglang):
    """Numeric, empty, zero, text and absent tags give MooncakeStore's own prefix (its __init__, C++ client stood in)."""
    for x in _one(sglang[0], "tags")["results"]:
        assert x["error"] is None and x["prefix"] == x["mooncake"], x


def test_object_names_are_mooncakes(sglang):
    """MLA and MHA, TP rank 1 of 2, PP rank 1 of 2, with and without a tag: the names the adapter reads
    and writes are those SGLang's MooncakeStore asks its client about for the same get_hash_str keys."""
    results = _one(sglang[0], "names")["results"]
    assert len(results) == 16
    for x in results:
        assert x["ours"] == x["mooncake"], x


def test_clear_reports_failure(sglang):
    """SGLang's clear_storage_backend says "cleared" unless clear() raises: it must raise with the sidecar down."""
    c = _one(sglang[0], "clear")
    assert c["up"] is True and c["down"] is False and "clear failed" in c["down_err"], c


@pytest.mark.parametrize("kind,pool,page", HYBRID, ids=["%s-%s" % (k, p) for k, p, _ in HYBRID])
def test_hybrid_pools_round_trip_through_v2(sglang, kind, pool, page):
    """register_mem_host_pool_v2, batch_set_v2, batch_exists_v2, batch_get_v2 driven by SGLang's
    HybridCacheController: the extra pool's pages are written, found and read; every byte of both
    pools equal; the object names are MooncakeStore's v2 names."""
    r = next(x for x in sglang[0] if x["check"] == "hybrid" and (x["kind"], x["pool"]) == (kind, pool))
    extra = 1 if pool == "mamba" else 4  # Mamba: one state, keyed by the last page's hash
    assert r["written"] == {"kv": 4, "extra": {pool: extra}}, r
    assert (r["found"], r["read"], r["extra_read"]) == (4, 4, {pool: extra}), r
    assert r["same_kv"] == [True] * 4 and r["same_extra"] == [True] * 4, r
    mla, mha = "", "0"
    names = {("mla", "draft"): ["_%s_draft_k" % mla], ("mha", "draft"): ["_%s_draft_k" % mha, "_%s_draft_v" % mha],
             ("mha", "swa"): ["_%s_swa_k" % mha, "_%s_swa_v" % mha], ("mla", "indexer"): ["_%s_indexer" % mla],
             ("mha", "mamba"): ["_%s_temporal" % mha, "_%s_conv_0" % mha]}
    assert r["names"] == names[(kind, pool)]


def test_sidecar_killed_mid_prefetch_gives_misses_and_live_threads(sglang):
    k = _one(sglang[0], "kill")
    assert k["found"] == 6 and k["read"] == 0 and k["threads_alive"] is True, k
