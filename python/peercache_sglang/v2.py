"""A hybrid model's extra host pools (SGLang's v2 calls: indexer, SWA, Mamba, draft, DeepSeek-V4's):
each with its own page geometry (its get_page_buffer_meta) and MooncakeStore's v2 object names."""
from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional, Tuple

from .errors import BadInput
from .client import Pools
from .connections import Conn
from .naming import v2_suffixes
from .pools import FileSpan, allocator_fds, buffer_address, find_file_span
from .sglang_compat import PoolTransferResult
from .v1 import PageCalls


class PoolCalls(PageCalls):
    """The v2 part of PeerCacheStorage."""

    v2_pools: Dict[str, Tuple[Any, List[str], Optional[List[FileSpan]]]]
    mla_part: str
    mha_part: str

    def _v2_suffixes(self, name: str, pool: Any) -> List[str]:
        return v2_suffixes(name, pool, bool(self.is_mla), self.mla_part, self.mha_part)

    def register_mem_host_pool_v2(self, host_pool: Any, host_pool_name: Any) -> None:
        """A hybrid model's extra pool (indexer, SWA, Mamba, draft, DeepSeek-V4's): served with its own
        page geometry (its get_page_buffer_meta) and MooncakeStore's v2 object names; zero copy when
        its buffers lie in an open memfd, else through the staging memfd."""
        name = str(getattr(host_pool_name, "value", host_pool_name))
        if name == "kv":  # the KV anchor came through register_mem_pool_host
            return
        if not hasattr(self, "registered_pools"):
            self.registered_pools = {}
        self.registered_pools[name] = host_pool
        try:
            suffixes = self._v2_suffixes(name, host_pool)
        except BadInput as e:
            self.v2_pools.pop(name, None)
            self._log(logging.ERROR, "v2-" + name, str(e))
            return
        spans, why = [], None
        for addr, nbytes in self._v2_buffers(host_pool):
            span, reason = find_file_span(addr, nbytes, allocator_fds(host_pool))
            if span is None:
                why = reason
                break
            spans.append(span)
        if not spans:
            why = why or "the pool exposes no buffers"
        if why is None:
            for sp in spans:
                self.files.setdefault(sp.inode, (sp.fd, sp.file_bytes))
        else:
            self._log(logging.WARNING, "v2-staging-" + name, "pool %r is not zero copy, its pages go through the staging memfd: %s" % (name, why))
        self.v2_pools[name] = (host_pool, suffixes, spans if why is None else None)

    @staticmethod
    def _v2_buffers(pool: Any) -> List[Tuple[int, int]]:
        """(address, bytes) of each buffer of a v2 pool: get_hybrid_pool_buffer() as MooncakeStore registers them, else kv_buffer."""
        getter = getattr(pool, "get_hybrid_pool_buffer", None)
        bufs = getter() if getter is not None else [getattr(pool, "kv_buffer", None)]
        out = []
        for b in bufs:
            if b is None:
                continue
            try:
                addr, n = buffer_address(b)
            except TypeError:
                continue
            if n:
                out.append((addr, n))
        return out

    @staticmethod
    def _pool_name(t: Any) -> str:
        n = getattr(t, "name", None)
        return str(getattr(n, "value", n))

    def _kv_anchor_is_logical(self) -> bool:
        """DeepSeek-V4's KV anchor owns indices only; its data is in v2 pools (MooncakeStore: kv_buffer is None)."""
        p = self.mem_pool_host
        return p is not None and getattr(p, "kv_buffer", 0) is None

    def batch_exists_v2(self, keys: List[str], pool_transfers: Any = None, extra_info: Any = None) -> Any:
        """The usable prefix: the KV pages found, cut by each extra pool's hit policy (as MooncakeStore's)."""
        kv = len(keys) if self._kv_anchor_is_logical() and isinstance(keys, (list, tuple)) else self.batch_exists(keys, extra_info)
        hits = {"kv": kv} if kv else {}
        final = kv
        for t in pool_transfers or []:
            if final == 0:
                break
            name = self._pool_name(t)
            page_exists = self._guard("batch_exists_v2", lambda c: self._v2_exists(c, name, keys[:kv]), [False] * kv)
            policy = str(getattr(getattr(t, "hit_policy", None), "value", getattr(t, "hit_policy", "all_pages")))
            boundary = 0
            if policy == "trailing_pages":
                trailing = max(1, len(t.keys) if getattr(t, "keys", None) else 1)
                for prefix in range(kv, 0, -1):
                    if all(page_exists[i] for i in range(max(0, prefix - trailing), prefix)):
                        boundary = prefix
                        break
            else:
                boundary = page_exists.index(False) if False in page_exists else kv
            if boundary:
                hits[name] = boundary
            final = min(final, boundary)
        try:
            return PoolTransferResult(final, hits)
        except Exception:  # an SGLang whose PoolTransferResult takes other arguments
            return PoolTransferResult(kv_hit_pages=final, extra_pool_hit_pages=hits)

    def _v2_pool(self, name: str) -> Tuple[Any, List[str], Optional[List[FileSpan]]]:
        entry = self.v2_pools.get(name)
        if entry is None:
            raise BadInput("pool %r was not registered (register_mem_host_pool_v2), or has no object names" % name)
        return entry

    def _v2_exists(self, c: Conn, name: str, keys: List[str]) -> List[bool]:
        pool, suffixes, _ = self._v2_pool(name)
        if not keys:
            return []
        names = self._names(keys, suffixes)
        found = c.client.exists(names)
        if len(found) != len(names):
            raise ConnectionError("malformed exists answer")
        k = len(suffixes)
        return [all(found[i * k + j] == "1" for j in range(k)) for i in range(len(keys))]

    def _v2_io(self, c: Conn, is_set: bool, name: str, keys: List[str], host_indices: Any) -> List[bool]:
        pool, suffixes, spans = self._v2_pool(name)
        self._check_keys(keys)
        if not keys:
            return []
        page = int(getattr(pool, "page_size", 1) or 1)
        count = len(host_indices) if host_indices is not None else 0
        if count != len(keys) * page:
            raise BadInput("pool %r: %d host indices for %d pages of %d tokens" % (name, count, len(keys), page))
        names = self._names(keys, suffixes)
        ptrs, sizes = pool.get_page_buffer_meta(host_indices)
        ptrs = ptrs.tolist() if hasattr(ptrs, "tolist") else list(ptrs)
        sizes = [sizes] * len(ptrs) if isinstance(sizes, int) else (sizes.tolist() if hasattr(sizes, "tolist") else list(sizes))
        nobj = len(keys) * len(suffixes)
        if not ptrs or len(ptrs) % nobj or len(sizes) != len(ptrs):
            raise BadInput("pool %r: get_page_buffer_meta gave %d pointers for %d objects" % (name, len(ptrs), nobj))
        per = len(ptrs) // nobj  # ranges per object (DeepSeek-V4's C4 pool: several, as Mooncake's multi-buffer)
        if is_set:
            self._check_slot(max(sum(sizes[i * per:(i + 1) * per]) for i in range(nobj)), name)
        if per == 1 and spans:
            pools, offsets = [], []
            for ptr, n in zip(ptrs, sizes):
                sp = next((x for x in spans if x.address <= ptr and ptr + n <= x.end), None)
                if sp is None:
                    raise BadInput("pool %r: a page at 0x%x lies outside its registered buffers" % (name, ptr))
                pools.append(c.file_pools[sp.inode])
                offsets.append(sp.file_offset + (ptr - sp.address))
            pool_arg: Pools = pools[0] if len(set(pools)) == 1 else pools
            lengths = self._lengths(sizes)
            bits = (c.client.set if is_set else c.client.get)(pool_arg, names, offsets, lengths)
        else:
            objects = [list(zip(ptrs[i * per:(i + 1) * per], sizes[i * per:(i + 1) * per])) for i in range(nobj)]
            bits = (self._staged_set if is_set else self._staged_get)(c, names, objects)
        if len(bits) != nobj:
            raise ConnectionError("malformed answer")
        return self._per_page(bits, len(suffixes), len(keys))

    def _v2(self, transfers: Any, is_set: bool) -> Dict[str, List[bool]]:
        out = {}
        for t in transfers or []:
            name = self._pool_name(t)
            keys = list(getattr(t, "keys", None) or [])
            indices = getattr(t, "host_indices", None)
            if name == "kv":
                out[name] = (self.batch_set_v1 if is_set else self.batch_get_v1)(keys, indices)
                continue
            what = "batch_%s_v2" % ("set" if is_set else "get")
            out[name] = self._guard(what, lambda c: self._v2_io(c, is_set, name, keys, indices), [False] * len(keys))
        return out

    def batch_get_v2(self, transfers: Any, extra_info: Any = None) -> Dict[str, List[bool]]:
        return self._v2(transfers, False)

    def batch_set_v2(self, transfers: Any, extra_info: Any = None) -> Dict[str, List[bool]]:
        return self._v2(transfers, True)
