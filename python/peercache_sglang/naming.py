"""Object names: what the adapter calls each page's objects in the store. As SGLang's MooncakeStore
names them (prefix `<extra_backend_tag>_<model>_`, then the page key, then a rank suffix), plus the
attention-CP rank under CP. schema/object-names.json holds test vectors that the TypeScript side
(src/store/keys.ts) and this module are both checked against."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Sequence

from .client import KeyBlob
from .errors import BadInput


def key_prefix(extra_backend_tag: Any, model_name: Any) -> str:
    """As MooncakeStore: str() of any tag that is not None (0 and "" included), then the model name
    with '/' as '-', joined by '_', with a trailing '_'; "" when neither is given."""
    parts: List[str] = []
    if extra_backend_tag is not None:
        parts.append(str(extra_backend_tag))
    if model_name:
        parts.append("-".join(str(model_name).split("/")))
    return ("_".join(parts) + "_") if parts else ""


@dataclass(frozen=True)
class ObjectNames:
    """A rank's page suffixes (`suffixes`: one per object of a page) and MooncakeStore's mla_suffix
    and mha_suffix (`mla_part`, `mha_part`), which v2 pool names are made of."""

    suffixes: List[str]
    mla_part: str
    mha_part: str


def object_names(is_mla: bool, tp_rank: int = 0, pp_rank: int = 0, pp_size: int = 1, cp_rank: int = 0, cp_size: int = 1) -> ObjectNames:
    """Each page's object names end with these (Mooncake's names, plus the CP rank under CP):
    MLA `_k` after the rank part, empty without PP or CP (hence `<hash>__k`); MHA `_k` and `_v`
    after `<tp_rank>[_<pp_rank>][_cp<cp_rank>_<cp_size>]`."""
    rank = [] if is_mla else ["%d" % tp_rank]
    if pp_size > 1:
        rank.append("%d" % pp_rank)
    if cp_size > 1:
        rank.append("cp%d_%d" % (cp_rank, cp_size))
    part = "_".join(rank)
    mla_part = "_".join((["%d" % pp_rank] if pp_size > 1 else []) + (["cp%d_%d" % (cp_rank, cp_size)] if cp_size > 1 else []))
    mha_part = "_".join(["%d" % tp_rank] + rank[1:] if is_mla else rank)
    suffixes = ["_%s_k" % part] if is_mla else ["_%s_k" % part, "_%s_v" % part]
    return ObjectNames(suffixes, mla_part, mha_part)


def page_object_names(prefix: str, key: str, names: ObjectNames) -> List[str]:
    """The full names of one page's objects (what schema/object-names.json's vectors list)."""
    return [prefix + key + s for s in names.suffixes]


def _is(pool: Any, *class_names: str) -> bool:
    return any(c.__name__ in class_names for c in type(pool).__mro__)


def v2_suffixes(name: str, pool: Any, is_mla: bool, mla: str, mha: str) -> List[str]:
    """MooncakeStore._get_hybrid_page_component_keys's suffixes, in get_page_buffer_meta's order."""
    if name == "mamba":
        out = ["_%s_conv_%d" % (mha, i) for i in range(len(getattr(pool, "conv_buffer", None) or []))]
        if getattr(pool, "temporal_state_elem_size", 1) > 0:
            out = ["_%s_temporal" % mha] + out
        return out
    if name == "draft":
        if _is(pool, "MLATokenToKVPoolHost"):
            return ["_%s_draft_k" % mla]
        return ["_%s_draft_k" % mha, "_%s_draft_v" % mha]
    if name == "draft_swa":
        if _is(pool, "DeepSeekV4PagedHostPool", "MLATokenToKVPoolHost"):
            return ["_%s_%s" % (mla, name)]
        if _is(pool, "MHATokenToKVPoolHost"):
            return ["_%s_%s_k" % (mha, name), "_%s_%s_v" % (mha, name)]
    if name in ("indexer", "draft_indexer", "deepseek_v4_c4", "deepseek_v4_c4_indexer", "deepseek_v4_c128",
                "deepseek_v4_c4_state", "deepseek_v4_c4_indexer_state", "deepseek_v4_c128_state"):
        return ["_%s_%s" % (mla, name)]
    if name == "swa":
        if not is_mla and hasattr(pool, "v_buffer"):
            return ["_%s_swa_k" % mha, "_%s_swa_v" % mha]
        if is_mla:
            return ["_%s_swa" % mla]
    raise BadInput("pool %r (%s) has no object names in MooncakeStore's v2 either: its pages are misses" % (name, type(pool).__name__))


def generic_suffix(suffixes: Sequence[str], part: int) -> str:
    """The copying path's (get/set/exists) names: one `_flat` object per key, `.N` for its further slot-sized parts."""
    base = suffixes[0][:-2] + "_flat" if suffixes else "_flat"
    return base if part == 0 else "%s.%d" % (base, part)


def check_keys(keys: Any) -> None:
    if not isinstance(keys, (list, tuple)):
        raise BadInput("keys must be a list of strings")
    if all(type(k) is str for k in keys) and "" not in keys:
        return
    for i, k in enumerate(keys):
        if not isinstance(k, str) or not k:
            raise BadInput("keys[%d] is not a non-empty string" % i)


def names_blob(prefix: str, keys: Any, suffixes: Sequence[str]) -> KeyBlob:
    """The batch's object names (prefix + key + each suffix) as one KeyBlob, checking the keys on the way."""
    if not isinstance(keys, (list, tuple)):
        raise BadInput("keys must be a list of strings")
    p, s = prefix, suffixes
    try:
        if len(s) == 1:  # one join in C, no list of names
            text = (p + (s[0] + "\n" + p).join(keys) + s[0]) if keys else ""
        else:
            text = "\n".join([p + k + x for k in keys for x in s])
        blob = text.encode()
    except (TypeError, ValueError):  # a key that is not a str, or not encodable
        check_keys(keys)
        raise BadInput("a key is not valid UTF-8 text")
    count = len(keys) * len(s)
    # A newline inside a key would split it in two on the wire (the prefix and suffixes have none).
    if count and ("\n" in "".join(keys) or "" in keys):
        check_keys(keys)
        raise BadInput("a key contains a newline")
    return KeyBlob(count, blob)
