"""Where SGLang's host pool lives, as the sidecar can reach it.

The sidecar maps files, so a pool buffer is zero-copy only when it lies in a MAP_SHARED mapping of a
file this process holds open (SGLang's `"allocator": "shm"` gives a memfd). `find_file_span` reads
/proc/self/maps for the mapping that holds a buffer and finds the open fd of that file; anything
else (anonymous or private memory) goes through a staging memfd with one copy.

Buffers are read without importing torch: a torch tensor (data_ptr, numel, element_size), a numpy
array (ctypes.data, nbytes), a writable buffer (bytearray, mmap), or a (ptr, nbytes) pair.
"""
from __future__ import annotations

import ctypes
import mmap
import os
from typing import Any, Iterable, Iterator, List, Optional, Tuple


def _bytes_address(data: bytes) -> int:
    """The address of a bytes object's contents (valid while the object lives)."""
    address = ctypes.cast(ctypes.c_char_p(data), ctypes.c_void_p).value
    if address is None:  # ctypes gives None for a NULL pointer, which a bytes object never has
        raise TypeError("a bytes object without an address")
    return address


def buffer_address(obj: Any, writable: bool = True) -> Tuple[int, int]:
    """(address, nbytes) of a tensor, array, buffer or (ptr, nbytes) pair; raises TypeError otherwise."""
    if isinstance(obj, tuple) and len(obj) == 2 and isinstance(obj[0], int) and isinstance(obj[1], int):
        return obj[0], obj[1]
    if hasattr(obj, "data_ptr") and hasattr(obj, "element_size"):
        if hasattr(obj, "is_contiguous") and not obj.is_contiguous():
            raise TypeError("the tensor is not contiguous")
        if getattr(getattr(obj, "device", None), "type", "cpu") != "cpu":
            raise TypeError("the tensor is not in host memory")
        return int(obj.data_ptr()), int(obj.numel()) * int(obj.element_size())
    if hasattr(obj, "__array_interface__") and hasattr(obj, "nbytes"):
        if hasattr(obj, "flags") and not obj.flags["C_CONTIGUOUS"]:
            raise TypeError("the array is not contiguous")
        return int(obj.__array_interface__["data"][0]), int(obj.nbytes)
    if isinstance(obj, (bytes,)) and not writable:
        return _bytes_address(obj), len(obj)
    try:
        view = memoryview(obj)
    except TypeError:
        raise TypeError("%s is not a tensor, array or buffer" % type(obj).__name__)
    if view.readonly:  # (a copy's address would outlive the copy: copy_source makes one the caller holds)
        raise TypeError("the buffer is read-only" if writable else "a read-only buffer other than bytes (copy_source copies it)")
    return ctypes.addressof(ctypes.c_char.from_buffer(obj)), view.nbytes


def copy_source(obj: Any) -> Any:
    """`obj` as buffer_address(writable=False) takes it: unchanged, or a read-only buffer that is not
    bytes (a read-only memoryview) copied into bytes, which the caller holds until it has copied from
    the address (buffer_address cannot: the copy would be freed before its address is used)."""
    if isinstance(obj, (bytes, tuple)) or hasattr(obj, "data_ptr") or hasattr(obj, "__array_interface__"):
        return obj
    try:
        view = memoryview(obj)
    except TypeError:
        return obj  # buffer_address names what it is not
    return bytes(view) if view.readonly else obj


class FileSpan:
    """A buffer [address, address + nbytes) that is file `fd` at `file_offset` (file `file_bytes` long)."""

    def __init__(self, address: int, nbytes: int, fd: int, file_offset: int, file_bytes: int, inode: int) -> None:
        self.address = address
        self.nbytes = nbytes
        self.fd = fd
        self.file_offset = file_offset
        self.file_bytes = file_bytes
        self.inode = inode

    @property
    def end(self) -> int:
        return self.address + self.nbytes


def _mappings() -> Iterator[Tuple[int, int, str, int, str, int, str]]:
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split(None, 5)
            if len(parts) < 5:
                continue
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            yield lo, hi, parts[1], int(parts[2], 16), parts[3], int(parts[4]), (parts[5].strip() if len(parts) > 5 else "")


def find_file_span(address: int, nbytes: int, candidate_fds: Iterable[int] = ()) -> Tuple[Optional[FileSpan], Optional[str]]:
    """The FileSpan of a buffer, or (None, reason) when it is not a shared mapping of an open file."""
    hit = None
    for lo, hi, perms, offset, dev, inode, path in _mappings():
        if lo <= address < hi:
            hit = (lo, hi, perms, offset, dev, inode, path)
            break
    if hit is None:
        return None, "address 0x%x is not mapped" % address
    lo, hi, perms, offset, dev, inode, path = hit
    if inode == 0:
        return None, "the pool is anonymous memory (start SGLang with \"allocator\": \"shm\" for a memfd pool)"
    if perms[3] != "s":
        return None, "the pool is a private mapping of %s (not shared with the sidecar)" % path
    # A buffer may span several consecutive maps lines of the same file (one mmap split by madvise).
    end = hi
    if address + nbytes > end:
        for lo2, hi2, perms2, offset2, dev2, inode2, _ in _mappings():
            if lo2 == end and inode2 == inode and perms2[3] == "s" and offset2 == offset + (end - lo):
                end = hi2
                if address + nbytes <= end:
                    break
        if address + nbytes > end:
            return None, "the pool spans more than one mapping"
    fds = list(candidate_fds)
    try:
        fds += [int(x) for x in os.listdir("/proc/self/fd")]
    except OSError:
        pass
    for fd in fds:
        try:
            st = os.fstat(fd)
        except OSError:
            continue
        if st.st_ino == inode and "%02x:%02x" % (os.major(st.st_dev), os.minor(st.st_dev)) == dev:
            return FileSpan(address, nbytes, fd, offset + (address - lo), st.st_size, inode), None
    return None, "no open fd holds %s (the memfd was closed after mmap)" % (path or "the pool's file")


def pool_buffers(pool: Any) -> List[Tuple[int, int]]:
    """The host pool's data buffers: kv_buffer (MLA, or MHA with k and v in one tensor), else k_buffer and v_buffer."""
    out = []
    for name in ("kv_buffer", "k_buffer", "v_buffer"):
        buf = getattr(pool, name, None)
        if buf is None:
            continue
        if isinstance(buf, (list, tuple)) and not (len(buf) == 2 and all(isinstance(x, int) for x in buf)):
            continue  # per-layer lists (layer_first): not one buffer
        try:
            out.append(buffer_address(buf))
        except TypeError:
            continue
        if name == "kv_buffer":
            break
    return out


def allocator_fds(pool: Any) -> List[int]:
    alloc = getattr(pool, "allocator", None)
    fds = []
    for name in ("fds", "fd"):
        v = getattr(alloc, name, None)
        if isinstance(v, int):
            fds.append(v)
        elif isinstance(v, (list, tuple)):
            fds += [x for x in v if isinstance(x, int)]
    return fds


class Staging:
    """A memfd this process maps, registered with the sidecar: the copy path for pools it cannot map."""

    def __init__(self, nbytes: int) -> None:
        self.fd = os.memfd_create("peercache-staging", getattr(os, "MFD_CLOEXEC", 1))
        try:
            os.ftruncate(self.fd, nbytes)
            self.map = mmap.mmap(self.fd, nbytes, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except BaseException:
            os.close(self.fd)
            raise
        self.nbytes = nbytes
        # Holds the mapping's buffer exported (and the address valid) until close().
        self._anchor: Optional[ctypes.c_char] = ctypes.c_char.from_buffer(self.map)
        self.address = ctypes.addressof(self._anchor)

    def close(self) -> None:
        self._anchor = None
        try:
            self.map.close()
        except BufferError:
            pass
        os.close(self.fd)
