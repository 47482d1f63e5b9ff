"""SGLang's names when SGLang is installed (the adapter then subclasses the real HiCacheStorage and
returns its PoolTransferResult), stand-ins with the same names otherwise (tests, tools)."""
from typing import Any

try:  # the real base class when SGLang is installed
    from sglang.srt.mem_cache.hicache_storage import HiCacheStorage as _Base  # type: ignore
except Exception:  # pragma: no cover - exercised when SGLang is absent (the tests)

    class _Base(object):
        """Stand-in for sglang's HiCacheStorage with the same method names."""

        def register_mem_pool_host(self, mem_pool_host):
            self.mem_pool_host = mem_pool_host

        def register_mem_host_pool_v2(self, host_pool, host_pool_name):
            if not hasattr(self, "registered_pools"):
                self.registered_pools = {}
            self.registered_pools[host_pool_name] = host_pool

        def clear(self):
            pass

        def get_stats(self):
            return None


try:
    from sglang.srt.mem_cache.hicache_storage import PoolTransferResult  # type: ignore
except Exception:

    class PoolTransferResult(object):
        """Stand-in for sglang's PoolTransferResult (kv_hit_pages, extra_pool_hit_pages)."""

        def __init__(self, kv_hit_pages, extra_pool_hit_pages):
            self.kv_hit_pages = kv_hit_pages
            self.extra_pool_hit_pages = extra_pool_hit_pages


_storage_metrics_cls = None


def storage_metrics_class() -> Any:
    """SGLang's StorageMetrics (its collector asserts that type), or a stand-in with its fields when
    SGLang is absent. Looked up on first use: the adapter is imported before SGLang's metrics module."""
    global _storage_metrics_cls
    if _storage_metrics_cls is None:
        try:
            from sglang.srt.observability.metrics_collector import StorageMetrics  # type: ignore

            _storage_metrics_cls = StorageMetrics
        except Exception:
            from dataclasses import dataclass, field
            from typing import List

            @dataclass
            class StorageMetrics(object):
                """Stand-in for sglang's StorageMetrics (same fields)."""

                prefetch_pgs: List[int] = field(default_factory=list)
                backup_pgs: List[int] = field(default_factory=list)
                prefetch_bandwidth: List[float] = field(default_factory=list)
                backup_bandwidth: List[float] = field(default_factory=list)

            _storage_metrics_cls = StorageMetrics
    return _storage_metrics_cls
