"""The copying calls (get, set, exists, batch_get, batch_set): what SGLang uses without interface_v1,
and tools; each key is one `_flat` object (split into slot-sized parts) moved through the staging memfd."""
from __future__ import annotations

import ctypes
import logging
from typing import Any, List, Tuple

from .connections import Conn
from .naming import generic_suffix
from .pools import buffer_address, copy_source
from .v2 import PoolCalls


class CopyCalls(PoolCalls):
    """The generic part of PeerCacheStorage."""

    def _generic_suffix(self, part: int) -> str:
        return generic_suffix(self.suffixes, part)

    def _generic_parts(self, key: str, nbytes: int) -> List[Tuple[str, int, int]]:
        slot = self.slot_bytes or nbytes
        parts, o, i = [], 0, 0
        while o < nbytes:
            n = min(slot, nbytes - o)
            parts.append((self.key_prefix + key + self._generic_suffix(i), o, n))
            o += n
            i += 1
        return parts

    def _generic_get(self, c: Conn, key: str, target: Any) -> Any:
        addr, nbytes = buffer_address(target)
        parts = self._generic_parts(key, nbytes)
        st, staging_pool = self._staging(c, nbytes)
        bits = c.client.get(staging_pool, [p[0] for p in parts], [p[1] for p in parts], [p[2] for p in parts])
        if bits != "1" * len(parts):
            return None
        ctypes.memmove(addr, st.address, nbytes)
        self._count(staging_copies=1, staging_bytes=nbytes)
        return target

    def _generic_set(self, c: Conn, key: str, value: Any) -> bool:
        value = copy_source(value)  # held in this frame until memmove below has copied from it
        addr, nbytes = buffer_address(value, writable=False)
        parts = self._generic_parts(key, nbytes)
        st, staging_pool = self._staging(c, nbytes)
        ctypes.memmove(st.address, addr, nbytes)
        self._count(staging_copies=1, staging_bytes=nbytes)
        bits = c.client.set(staging_pool, [p[0] for p in parts], [p[1] for p in parts], [p[2] for p in parts])
        return bits == "1" * len(parts)

    def get(self, key: str, target_location: Any = None, target_sizes: Any = None) -> Any:
        if target_location is None:
            self._log(logging.WARNING, "get-target", "get(%r): needs a target_location (a host tensor) to read into" % (key,))
            return None
        def run(c: Conn) -> Any:
            self._check_keys([key])
            return self._generic_get(c, key, target_location)

        return self._guard("get", run, None)

    def batch_get(self, keys: List[str], target_locations: Any = None, target_sizes: Any = None) -> List[Any]:
        n = len(keys) if isinstance(keys, (list, tuple)) else 0
        if target_locations is None or len(target_locations) != n:
            self._log(logging.WARNING, "batch_get-target", "batch_get: needs one target_location per key")
            return [None] * n

        def run(c: Conn) -> Any:
            self._check_keys(keys)
            return [self._generic_get(c, k, t) for k, t in zip(keys, target_locations)]

        return self._guard("batch_get", run, [None] * n)

    def set(self, key: str, value: Any = None, target_location: Any = None, target_sizes: Any = None) -> bool:
        src = value if value is not None else target_location
        if src is None:
            return False
        def run(c: Conn) -> bool:
            self._check_keys([key])
            return self._generic_set(c, key, src)

        return self._guard("set", run, False)

    def batch_set(self, keys: List[str], values: Any = None, target_locations: Any = None, target_sizes: Any = None) -> bool:
        srcs = values if values is not None else target_locations
        n = len(keys) if isinstance(keys, (list, tuple)) else 0
        if srcs is None or len(srcs) != n:
            return False

        def run(c: Conn) -> Any:
            self._check_keys(keys)
            return all([self._generic_set(c, k, v) for k, v in zip(keys, srcs)])

        return bool(self._guard("batch_set", run, False))

    def exists(self, key: str) -> bool:
        def run(c: Conn) -> Any:
            self._check_keys([key])
            return c.client.exists([self.key_prefix + key + self._generic_suffix(0)]) == "1"

        return bool(self._guard("exists", run, False))
