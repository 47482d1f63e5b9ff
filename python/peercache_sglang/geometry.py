"""The host pool's page addresses as a formula, so a batch need not call get_page_buffer_meta.

SGLang's page-first layouts put object j of the page that starts at token t at
`base_j + t * stride`, `object_bytes` long (MLA: one object; MHA: k, then v in the second half).
Asking the pool instead costs a batch of 128 pages of 64 tokens about 8 µs here and more in SGLang,
whose get_page_buffer_meta turns the whole index tensor (8,192 ints) into a list and loops per page.

The formula is never assumed: `PageGeometry.probe` asks the pool's own get_page_buffer_meta, once,
for a spread of pages across the whole pool, and keeps the formula only if every pointer and size
matches; the adapter then compares it with the pool's answer again every RECHECK_EVERY calls and
drops it at the first difference (and goes back to asking the pool).
"""
from __future__ import annotations

import sys
from typing import Any, List, Optional, Sequence, Tuple

from .pools import FileSpan

PROBE_PAGES = 64
RECHECK_EVERY = 64


def _index_vector(values: List[int]) -> Any:
    """Token indices as SGLang passes them (an int64 tensor when torch is loaded; never imports it)."""
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "tensor"):
        return torch.tensor(values, dtype=torch.int64)
    return values


class PageGeometry(object):
    """Where each object of a page lies in the pool's file: `file_bases[j] + first_token * stride`."""

    __slots__ = ("stride", "object_bytes", "file_bases", "inode")

    def __init__(self, stride: int, object_bytes: int, file_bases: List[int], inode: int) -> None:
        self.stride = stride
        self.object_bytes = object_bytes
        self.file_bases = file_bases
        self.inode = inode

    @classmethod
    def probe(cls, pool: Any, page_size: int, pool_tokens: Optional[int], comps: int, spans: Sequence[FileSpan]) -> Tuple[Optional["PageGeometry"], Optional[str]]:
        """(geometry, None) when the pool's pointers follow the formula everywhere probed, else (None, reason)."""
        if not pool_tokens or pool_tokens // page_size < 2:
            return None, "the pool's size in tokens is unknown or under 2 pages"
        pages = pool_tokens // page_size
        picks = sorted(set([0, 1, pages - 1] + [i * (pages - 1) // (PROBE_PAGES - 1) for i in range(PROBE_PAGES)]))
        indices = [t for p in picks for t in range(p * page_size, (p + 1) * page_size)]
        ptrs, sizes = pool.get_page_buffer_meta(_index_vector(indices))
        ptrs = ptrs.tolist() if hasattr(ptrs, "tolist") else list(ptrs)
        sizes = [sizes] * len(ptrs) if isinstance(sizes, int) else (sizes.tolist() if hasattr(sizes, "tolist") else list(sizes))
        if len(ptrs) != len(picks) * comps or len(sizes) not in (1, len(ptrs)):
            return None, "get_page_buffer_meta gave %d pointers for %d pages of %d objects" % (len(ptrs), len(picks), comps)
        object_bytes = int(sizes[0])
        if any(int(n) != object_bytes for n in sizes):
            return None, "objects of different sizes"
        bases = [int(p) for p in ptrs[:comps]]  # page 0 starts at token 0
        step = int(ptrs[comps]) - bases[0]  # page 1 starts at token page_size
        if step <= 0 or step % page_size:
            return None, "page 1 is not a whole number of token strides after page 0"
        stride = step // page_size
        for k, p in enumerate(picks):
            t = p * page_size
            for j in range(comps):
                if int(ptrs[k * comps + j]) != bases[j] + t * stride:
                    return None, "page %d object %d is not at base + first token x stride" % (p, j)
        # Every page the pool can hold must lie in one registered file, for the file offsets below.
        file_bases: List[int] = []
        inode: Optional[int] = None
        last = (pages - 1) * page_size * stride + object_bytes
        for b in bases:
            span = next((s for s in spans if s.address <= b and b + last <= s.end), None)
            if span is None or (inode is not None and span.inode != inode):
                return None, "the pool's pages do not all lie in one registered file"
            inode = span.inode
            file_bases.append(span.file_offset + (b - span.address))
        if inode is None:
            return None, "the pool's pages have no objects"
        return cls(stride, object_bytes, file_bases, inode), None

    def file_offsets(self, starts: Sequence[int]) -> List[int]:
        """File offsets of the objects of pages starting at these (checked) token indices, k then v per
        page: what the sidecar READs into."""
        s, bases = self.stride, self.file_bases
        if len(bases) == 1:
            b = bases[0]
            return [t * s + b for t in starts]
        firsts = [t * s for t in starts]
        out = [0] * (len(firsts) * len(bases))
        for j, b in enumerate(bases):
            out[j :: len(bases)] = [x + b for x in firsts]
        return out
