"""SGLang's names when SGLang is installed (the adapter then subclasses the real HiCacheStorage and
returns its PoolTransferResult), stand-ins with the same names otherwise (tests, tools).

SGLang ships no type information, so the type checker sees the stand-ins (TYPE_CHECKING): the
adapter is checked against the fields and methods it uses, which the real classes have too."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional


class _StandInStorage(object):
    """Stand-in for sglang's HiCacheStorage: PeerCacheStorage itself defines every method SGLang calls
    (register_mem_pool_host, register_mem_host_pool_v2, the batch calls, clear, get_stats)."""


@dataclass
class _StandInPoolTransferResult(object):
    """Stand-in for sglang's PoolTransferResult (a dataclass with these fields)."""

    kv_hit_pages: int
    extra_pool_hit_pages: Dict[str, int]


@dataclass
class _StandInStorageMetrics(object):
    """Stand-in for sglang's StorageMetrics (same fields)."""

    prefetch_pgs: List[int] = field(default_factory=list)
    backup_pgs: List[int] = field(default_factory=list)
    prefetch_bandwidth: List[float] = field(default_factory=list)
    backup_bandwidth: List[float] = field(default_factory=list)


if TYPE_CHECKING:
    HiCacheStorageBase = _StandInStorage
    PoolTransferResult = _StandInPoolTransferResult
else:
    try:  # the real base class when SGLang is installed
        from sglang.srt.mem_cache.hicache_storage import HiCacheStorage as HiCacheStorageBase
    except Exception:  # pragma: no cover - exercised when SGLang is absent (the tests)
        HiCacheStorageBase = _StandInStorage
    try:
        from sglang.srt.mem_cache.hicache_storage import PoolTransferResult
    except Exception:
        PoolTransferResult = _StandInPoolTransferResult

StorageMetricsClass = Callable[[], _StandInStorageMetrics]
_storage_metrics_cls: Optional[StorageMetricsClass] = None


def storage_metrics_class() -> StorageMetricsClass:
    """SGLang's StorageMetrics (its collector asserts that type), or a stand-in with its fields when
    SGLang is absent. Looked up on first use: the adapter is imported before SGLang's metrics module."""
    global _storage_metrics_cls
    if _storage_metrics_cls is None:
        cls: Any
        try:
            from sglang.srt.observability.metrics_collector import StorageMetrics  # type: ignore[import]  # SGLang: no type information

            cls = StorageMetrics
        except Exception:
            cls = _StandInStorageMetrics
        _storage_metrics_cls = cls
    return _storage_metrics_cls
