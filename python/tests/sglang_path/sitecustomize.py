"""Put on PYTHONPATH (with ../shared/sglang) by the SGLang-real-code tests: lets SGLang's own
source import on CPU with Debian's torch 1.13. Nothing here re-creates an SGLang class: it only
(1) gives torch 1.13 the few names SGLang touches at import time, and (2) installs empty modules for
third-party packages SGLang imports but the tested paths (storage backend factory, HiCacheController's
storage threads, host pools, get_hash_str, metrics collector, MooncakeStore naming) never call."""
import dataclasses
import importlib
import importlib.abc
import importlib.machinery
import sys
import types

import torch

# ---- (1) torch 1.13 shims: names SGLang reads at import time on CPU
# dtypes of newer torch, read into dtype tables and constants (finfo of float8) only
for _name, _like in (("float8_e4m3fn", torch.bfloat16), ("float8_e5m2", torch.bfloat16), ("float8_e4m3fnuz", torch.bfloat16),
                     ("float8_e5m2fnuz", torch.bfloat16), ("float8_e8m0fnu", torch.bfloat16), ("float4_e2m1fn_x2", torch.uint8),
                     ("uint16", torch.int16), ("uint32", torch.int32), ("uint64", torch.int64)):
    if not hasattr(torch, _name):
        setattr(torch, _name, _like)
import torch.library  # noqa: E402

if not getattr(torch.library.Library, "_peercache_fragment", False):
    # torch 1.13 has DEF and IMPL libraries, no FRAGMENT (2.1) nor infer_schema (2.5). SGLang registers its
    # custom ops (all-reduce wrappers, CUDA kernels) into a FRAGMENT library at import time; on CPU they are
    # plain Python functions: torch.ops.sglang.<name> is made the function itself.
    _Library = torch.library.Library

    class _FragmentLibrary(_Library):
        _peercache_fragment = True

        def __init__(self, ns, kind, dispatch_key=""):
            self._fragment = kind == "FRAGMENT"
            self.ns = ns
            if not self._fragment:
                super().__init__(ns, kind, dispatch_key)

        def define(self, schema, *args, **kwargs):
            return None if self._fragment else super().define(schema, *args, **kwargs)

        def impl(self, name, fn, *args, **kwargs):
            if not self._fragment:
                return super().impl(name, fn, *args, **kwargs)
            setattr(getattr(torch.ops, self.ns), name, fn)  # torch.ops.sglang.<op> is the function itself

        def _register_fake(self, *args, **kwargs):
            return None

        def __del__(self):
            if not self._fragment:
                super().__del__()

    torch.library.Library = _FragmentLibrary
    if not hasattr(torch.library, "infer_schema"):
        torch.library.infer_schema = lambda fn, mutates_args=(), **kw: "(...) -> ()"
if not hasattr(torch.bfloat16, "itemsize"):
    # torch 2.1's dtype.itemsize, which SGLang sizes its pools with. torch.dtype is a C type without a
    # settable dict, so the property goes into its type dict (and the type cache is told).
    import ctypes
    import gc

    gc.get_referents(torch.dtype.__dict__)[0]["itemsize"] = property(lambda self: torch.empty((), dtype=self).element_size())
    ctypes.pythonapi.PyType_Modified(ctypes.py_object(torch.dtype))
if not hasattr(torch.cpu, "is_available"):  # torch 2.x; SGLang's CPU feature probes ask it
    torch.cpu.is_available = lambda: True
try:  # torch 2.x ReduceOp converts to int; parallel_state reads int(ReduceOp.SUM) into a constant
    int(torch.distributed.ReduceOp.SUM)
except TypeError:
    torch.distributed.ReduceOp.__int__ = lambda self: next(
        (int(v) for k, v in torch.distributed.ReduceOp.RedOpType.__members__.items() if getattr(torch.distributed.ReduceOp, k, None) is self), 0)
except AttributeError:
    pass
if not hasattr(torch, "get_device_module"):
    # torch 2.3: the device module; on a CPU-only torch 2.x it is torch.cpu, whose Stream and stream()
    # are no-ops (HiCacheController's transfer engine makes its streams with them).
    import contextlib

    class _CpuStream(object):
        def __init__(self, *args, **kwargs):
            pass

        def synchronize(self):
            pass

        def wait_stream(self, other):
            pass

    class _CpuEvent(object):
        def __init__(self, *args, **kwargs):
            pass

        def record(self, stream=None):
            pass

        def wait(self, stream=None):
            pass

        def synchronize(self):
            pass

        def query(self):
            return True

    torch.cpu.Stream = getattr(torch.cpu, "Stream", _CpuStream)
    torch.cpu.Event = getattr(torch.cpu, "Event", _CpuEvent)
    torch.cpu.stream = getattr(torch.cpu, "stream", lambda s=None: contextlib.nullcontext())
    torch.cpu.current_stream = getattr(torch.cpu, "current_stream", lambda device=None: _CpuStream())
    torch.cpu.synchronize = getattr(torch.cpu, "synchronize", lambda device=None: None)
    torch.get_device_module = lambda device=None: torch.cuda if torch.cuda.is_available() else torch.cpu
if not hasattr(torch, "xpu"):  # platform discovery asks torch.xpu.is_available()
    torch.xpu = types.SimpleNamespace(is_available=lambda: False)


class _Module(types.ModuleType):
    """An empty module: attribute reads give an inert placeholder (used only at import time)."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Placeholder(self.__name__ + "." + name)


class _PlaceholderMeta(type):
    def __getattr__(cls, name):  # class methods of the stand-in base called at import time (Model.model_rebuild())
        if name.startswith("__"):
            raise AttributeError(name)
        return _Placeholder(cls.__name__ + "." + name)


class _PlaceholderBase(object, metaclass=_PlaceholderMeta):
    """What a class deriving from a stand-in derives from (class options such as frozen=True are ignored)."""

    def __init_subclass__(cls, **options):
        super().__init_subclass__()

    def __init__(self, *args, **kwargs):
        pass


class _Placeholder(object):
    def __init__(self, name):
        self._name = name

    def __call__(self, *args, **kwargs):
        if len(args) == 1 and callable(args[0]) and not kwargs:
            return args[0]  # used as a decorator at import time
        return _Placeholder(self._name + "()")  # module-level set-up (a logger, a registry) at import time

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Placeholder(self._name + "." + name)

    def __mro_entries__(self, bases):
        return (_PlaceholderBase,)

    # in annotations evaluated at import time: `dict | Placeholder`, `Placeholder[int]`
    def __or__(self, other):
        return self

    __ror__ = __or__

    def __getitem__(self, key):
        return self

    def __setitem__(self, key, value):  # registries filled at import time
        pass

    def __iter__(self):
        return iter(())


# ---- (2) third-party packages SGLang imports but the tested paths never use, each with why. They
# are stood in even where installed, so every machine imports the same thing (Debian's pydantic 1,
# for one, would fail on SGLang's pydantic 2 models). Any submodule of a listed package is stood in too.
STANDINS = {
    "aiohttp": "HTTP client of the server's entry points and disaggregation bootstrap",
    "compressed_tensors": "quantization configs of compressed checkpoints (model loading)",
    "gguf": "GGUF checkpoint loading",
    "huggingface_hub": "model download",
    "IPython": "notebook display helpers",
    "msgspec": "kernel-registry records and IPC messages (a dataclass stands in for Struct: they are declared at import time)",
    "openai": "the OpenAI-compatible API's protocol types",
    "orjson": "fast JSON for the HTTP server's responses",
    "partial_json_parser": "function-call parsing of streamed outputs",
    "pybase64": "base64 of multimodal inputs",
    "pydantic": "the OpenAI-compatible API's request models",
    "regex": "tokenizer and function-call parsing",
    "safetensors": "checkpoint loading",
    "sentencepiece": "tokenizers",
    "starlette": "the HTTP server",
    "torchvision": "image preprocessing of multimodal models",
    "transformers": "model configs and tokenizers (the tested paths take no model config)",
    "triton": "GPU kernels (the CPU paths never launch one)",
    "xgrammar": "grammar-constrained decoding",
}
# torch 2.x modules SGLang imports at import time; absent from torch 1.13 and unused on CPU.
TORCH_MODULES = {
    "torch._custom_op": "custom-op schema inference of torch 2.4 (see the FRAGMENT library above)",
    "torch.func": "functorch transforms used by model code",
    "torch.utils._contextlib": "torch 2.x context-manager helpers imported by model code",
}
# names newer torch has in modules 1.13 has, which SGLang imports (CUDA/NCCL machinery, torch.compile).
TORCH_NAMES = {
    "torch": ("compile", "compiler"),
    "torch.cuda": ("MemPool",),
    "torch.cuda.memory": ("CUDAPluggableAllocator", "_cuda_beginAllocateCurrentThreadToPool", "_cuda_endAllocateToPool", "_cuda_releasePool"),
}


class _StandInFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Gives an empty module for each listed package and any of its submodules."""

    def find_spec(self, name, path, target=None):
        top = name.split(".")[0]
        if top in STANDINS or any(name == m or name.startswith(m + ".") for m in TORCH_MODULES):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        m = _Module(spec.name)
        m.__path__ = []
        return m

    def exec_module(self, module):
        if module.__name__ == "msgspec":
            module.Struct = _Struct
            module.field = dataclasses.field


class _Struct(object):
    """msgspec.Struct as a dataclass: SGLang declares kernel-registry records with it at import time."""

    def __init_subclass__(cls, frozen=False, **options):
        super().__init_subclass__()
        dataclasses.dataclass(cls, frozen=frozen)


for _top in list(STANDINS) + list(TORCH_MODULES):  # stood in even where installed (see above)
    for _loaded in [n for n in sys.modules if n == _top or n.startswith(_top + ".")]:
        if not _top.startswith("torch"):
            del sys.modules[_loaded]
sys.meta_path.insert(0, _StandInFinder())

for _mod, _names in TORCH_NAMES.items():
    _m = importlib.import_module(_mod)
    for _name in _names:
        if not hasattr(_m, _name):
            setattr(_m, _name, _Placeholder(_mod + "." + _name))
