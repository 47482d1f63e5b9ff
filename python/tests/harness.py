"""Test harness for the adapter's protocol-level tests and benchmarks/bench-sglang.py: real `peercache
node` sidecars, and memfd buffers laid out as SGLang's page_first host pools (pool_host/mla.py, mha.py):
  MLA kv_buffer (S, L, 1, dim): page pointer base + first_token*L*dim*item, L*P*dim*item bytes;
  MHA kv_buffer (2, S, L, H, D): k at base + t*L*H*D*item, v the same in the second half;
get_page_buffer_meta(host_indices) reads one token index per page (host_indices[::page_size]) and
returns (ptr_list, element_size_list), k then v per page for MHA. These are not SGLang's classes
(the adapter must also run where SGLang's own pools misbehave: test_hostile_pool, test_page_geometry);
SGLang's real pools, controller and factory drive the adapter in test_sglang_real.py.
"""
import ctypes
import mmap
import os
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "python"))

from peercache_sglang.client import SidecarClient  # noqa: E402

BIN = os.path.join(ROOT, "dist", "cli", "peercache.js")
SLOT_BYTES = 8192
PAGE_TOKENS = 16


class _Alloc(object):
    def __init__(self, fd):
        self.fd = fd


class PageFirstPool(object):
    """A host KV pool with SGLang's page_first geometry in a memfd (or anonymous memory: memfd=False)."""

    layout = "page_first"

    def __init__(self, pages=320, page_size=PAGE_TOKENS, layers=4, mla_dim=64, heads=2, head_dim=32, itemsize=2, memfd=True):
        self.page_size = page_size
        self.size = pages * page_size
        self.is_mla = type(self).__name__.startswith("MLA")
        if self.is_mla:
            self.token_bytes = layers * mla_dim * itemsize
            total = self.size * self.token_bytes
        else:
            self.token_bytes = layers * heads * head_dim * itemsize
            total = 2 * self.size * self.token_bytes
        self.nbytes = total
        if memfd:
            self.fd = os.memfd_create("sglang-host-pool", 0)
            os.ftruncate(self.fd, total)
            self.map = mmap.mmap(self.fd, total, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
            self.allocator = _Alloc(self.fd)
        else:
            self.fd = None
            self.map = mmap.mmap(-1, total, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, mmap.PROT_READ | mmap.PROT_WRITE)
        self._anchor = ctypes.c_char.from_buffer(self.map)
        self.base = ctypes.addressof(self._anchor)
        self.kv_buffer = (self.base, total)
        self.object_bytes = page_size * self.token_bytes

    def get_page_buffer_meta(self, indices):
        firsts = indices[:: self.page_size]
        firsts = firsts.tolist() if hasattr(firsts, "tolist") else list(firsts)
        ptrs = []
        half = self.size * self.token_bytes
        for t in firsts:
            k = self.base + t * self.token_bytes
            ptrs.append(k)
            if not self.is_mla:
                ptrs.append(k + half)
        return ptrs, [self.object_bytes] * len(ptrs)

    # --- test helpers
    def object_ranges(self, page):
        """(offset, length) of each object of a page, in buffer order (k then v)."""
        t = page * self.page_size
        out = [(t * self.token_bytes, self.object_bytes)]
        if not self.is_mla:
            out.append((self.size * self.token_bytes + t * self.token_bytes, self.object_bytes))
        return out

    def fill(self, page):
        data = []
        for i, (o, n) in enumerate(self.object_ranges(page)):
            b = os.urandom(n)
            self.map[o:o + n] = b
            data.append(b)
        return data

    def read(self, page):
        return [bytes(self.map[o:o + n]) for o, n in self.object_ranges(page)]

    def zero(self, page):
        for o, n in self.object_ranges(page):
            self.map[o:o + n] = bytes(n)

    def indices(self, pages):
        out = []
        for p in pages:
            out.extend(range(p * self.page_size, (p + 1) * self.page_size))
        return out

    def close(self):
        self._anchor = None
        self.map.close()
        if self.fd is not None:
            os.close(self.fd)


class MLAPageFirstPool(PageFirstPool):
    pass


class MHAPageFirstPool(PageFirstPool):
    pass


class RankConfig(object):
    """A rank's storage config with HiCacheStorageConfig's fields (SGLang's own is used in test_sglang_real.py)."""

    def __init__(self, is_mla, tp_rank=0, tp_size=1, extra=None, pp=(0, 1), cp=(0, 1)):
        self.tp_rank, self.tp_size, (self.pp_rank, self.pp_size) = tp_rank, tp_size, pp
        self.attn_cp_rank, self.attn_cp_size = cp
        self.is_mla_model = is_mla
        self.enable_storage_metrics = True
        self.is_page_first_layout = True
        self.model_name = "test/model"
        self.extra_config = extra or {}


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Sidecar(object):
    def __init__(self, protocol, discovery, sock_path, log_path, slot_bytes=SLOT_BYTES, segment="64m", log_level="info"):
        self.protocol, self.discovery, self.sock_path, self.log_path = protocol, discovery, sock_path, log_path
        self.slot_bytes, self.segment, self.log_level = slot_bytes, segment, log_level
        self.proc = None

    extra_args = ()

    def start(self, timeout=30.0):
        if not os.path.exists(BIN):
            raise RuntimeError("%s is missing: run `npm run build` first" % BIN)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            ["node", BIN, "node", "--socket", self.sock_path, "--discovery-addr", self.discovery, "--protocol", self.protocol,
             "--global-segment", self.segment, "--slot-bytes", str(self.slot_bytes), "--log-level", self.log_level] + list(self.extra_args),
            stdout=log, stderr=log, cwd=ROOT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("sidecar exited (%s): %s" % (self.proc.returncode, open(self.log_path).read()[-2000:]))
            if os.path.exists(self.sock_path):
                c = SidecarClient(self.sock_path, 2.0)
                try:
                    c.connect()
                    c.close()
                    return self
                except OSError:
                    pass
            time.sleep(0.05)
        raise RuntimeError("sidecar not ready in %.0f s: %s" % (timeout, open(self.log_path).read()[-2000:]))

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
