"""AdapterConfig: everything the adapter takes from SGLang's storage config (HiCacheStorageConfig:
ranks, MLA, model name, metrics) and its extra config (`--hicache-storage-backend-extra-config`:
socket, deadlines, polling, interface_v1, extra_backend_tag), parsed and checked in one place."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from .naming import key_prefix

DEFAULT_SOCKET = "/run/peercache/peercache.sock"


def _cfg(config: Any, name: str, default: Any) -> Any:
    return getattr(config, name, default) if config is not None else default


@dataclass(frozen=True)
class AdapterConfig:
    socket_path: str = DEFAULT_SOCKET
    timeout_s: float = 15.0
    connect_timeout_s: float = 2.0
    retry_s: float = 0.5
    poll_us: float = 0.0
    # SGLang picks batch_get_v1/batch_set_v1 only when bool(extra_config.get("interface_v1", 0)) holds
    # (cache_controller.attach_storage_backend), else batch_get/batch_set: the same test here keeps
    # exists, get and set on the same names whichever SGLang uses.
    interface_v1: bool = False
    enable_metrics: bool = False
    tp_rank: int = 0
    pp_rank: int = 0
    pp_size: int = 1
    # Attention context parallel (NSA): each CP rank holds a disjoint slice of every page, so each
    # gets its own objects, as SGLang's file backend does (Mooncake's keys omit it: CP ranks would
    # overwrite and read each other's slices).
    cp_rank: int = 0
    cp_size: int = 1
    is_mla: Optional[bool] = None  # None: told by the host pool's class at registration
    key_prefix: str = ""

    @classmethod
    def from_sglang(cls, storage_config: Any = None, kwargs: Optional[Mapping[str, Any]] = None, **extra: Any) -> "AdapterConfig":
        """SGLang's storage config (or None), its extra config merged with `kwargs` and `extra` (later wins)."""
        cfg = dict(_cfg(storage_config, "extra_config", None) or {})
        cfg.update(kwargs or {})
        cfg.update(extra)
        socket_path = cfg.get("socket") or os.environ.get("PEERCACHE_SOCKET") or DEFAULT_SOCKET
        timeout_s = float(cfg.get("timeout_s", 15.0))
        connect_timeout_s = float(cfg.get("connect_timeout_s", min(2.0, timeout_s)))
        retry_s = float(cfg.get("retry_s", 0.5))
        try:
            poll_us = float(cfg.get("poll_us", 0))
        except (TypeError, ValueError):
            poll_us = -1.0
        if not 0 <= poll_us <= 10000:
            raise ValueError("peercache: poll_us must be 0..10000 (µs of polling around each answer; 0: off), got %r" % cfg.get("poll_us"))
        prefix = key_prefix(cfg.get("extra_backend_tag"), _cfg(storage_config, "model_name", None))
        if "\n" in prefix:
            raise ValueError("peercache: model_name and extra_backend_tag must not contain a newline (they prefix every key), got %r" % prefix)
        is_mla = _cfg(storage_config, "is_mla_model", None)
        return cls(
            socket_path=socket_path,
            timeout_s=timeout_s,
            connect_timeout_s=connect_timeout_s,
            retry_s=retry_s,
            poll_us=poll_us,
            interface_v1=bool(cfg.get("interface_v1", 0)),
            enable_metrics=bool(_cfg(storage_config, "enable_storage_metrics", False)),
            tp_rank=int(_cfg(storage_config, "tp_rank", 0)),
            pp_rank=int(_cfg(storage_config, "pp_rank", 0)),
            pp_size=int(_cfg(storage_config, "pp_size", 1)),
            cp_rank=int(_cfg(storage_config, "attn_cp_rank", 0) or 0),
            cp_size=int(_cfg(storage_config, "attn_cp_size", 1) or 1),
            is_mla=is_mla,
            key_prefix=prefix,
        )
