"""With SGLang importable, the adapter subclasses its HiCacheStorage ABC and can be built the way
the dynamic backend factory builds it: cls(storage_config, kwargs). A fake `sglang` package with
the ABC's abstract methods (hicache_storage.py's) stands in for the real one, in a child process."""
import os
import subprocess
import sys
import textwrap

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

FAKE = textwrap.dedent('''
    from abc import ABC, abstractmethod
    from dataclasses import dataclass

    @dataclass
    class PoolTransferResult:
        kv_hit_pages: int
        extra_pool_hit_pages: dict

    class HiCacheStorage(ABC):
        def register_mem_pool_host(self, mem_pool_host):
            self.mem_pool_host = mem_pool_host
        @abstractmethod
        def get(self, key, target_location=None, target_sizes=None): ...
        @abstractmethod
        def batch_get(self, keys, target_locations=None, target_sizes=None): ...
        @abstractmethod
        def set(self, key, value=None, target_location=None, target_sizes=None): ...
        @abstractmethod
        def batch_set(self, keys, values=None, target_locations=None, target_sizes=None): ...
        @abstractmethod
        def exists(self, key): ...
''')

CHECK = textwrap.dedent('''
    import importlib
    from sglang.srt.mem_cache.hicache_storage import HiCacheStorage, PoolTransferResult
    cls = getattr(importlib.import_module("peercache_sglang"), "PeerCacheStorage")
    assert issubclass(cls, HiCacheStorage)
    s = cls(None, {"socket": "/nonexistent/peercache.sock", "connect_timeout_s": 0.2})
    r = s.batch_exists_v2(["a"])
    assert isinstance(r, PoolTransferResult) and r.kv_hit_pages == 0, r
    assert s.batch_exists(["a"]) == 0 and s.get_stats() is not None
    print("ok")
''')


def test_subclasses_sglangs_abc_when_sglang_is_importable(tmp_path):
    pkg = tmp_path / "sglang" / "srt" / "mem_cache"
    pkg.mkdir(parents=True)
    for d in (tmp_path / "sglang", tmp_path / "sglang" / "srt", pkg):
        (d / "__init__.py").write_text("")
    (pkg / "hicache_storage.py").write_text(FAKE)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), os.path.join(ROOT, "python")]))
    out = subprocess.run([sys.executable, "-c", CHECK], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
