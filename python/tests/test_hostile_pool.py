"""A client that shrinks its pool's file after registering it must not crash the sidecar.

The sidecar maps a client's memfd MAP_SHARED; SGLang creates it without MFD_ALLOW_SEALING, so it
cannot be sealed against shrinking. A page the file no longer covers raises SIGBUS at the first
touch: here by the READ that lands in the pool (get) and by the copy that publishes from it (set).
"""
import os
import sys

import pytest

from conftest import backend, sidecar_pair, unique_keys
from peercache_sglang.client import SidecarClient, SidecarError

PAGES = 8


@pytest.fixture(params=["shm", "tcp"])
def own_hosts(request, tmp_path):
    """Sidecars for this test alone: a crash here must not take the other tests' sidecars with it."""
    a, b = sidecar_pair(tmp_path, request.param)
    yield a, b
    b.stop()
    a.stop()


def published(sidecar, n):
    """n pages published on `sidecar` by a well-behaved rank: (keys, object names, object bytes, page bytes)."""
    w, wp = backend(sidecar.sock_path, "mla")
    keys = unique_keys(n)
    data = [wp.fill(p) for p in range(n)]
    assert w.batch_set_v1(keys, wp.indices(range(n))) == [True] * n
    names = [w.key_prefix + k + w.suffixes[0] for k in keys]
    size = wp.object_bytes
    w.close()
    wp.close()
    return keys, names, size, data


@pytest.mark.parametrize("op", ["get", "set"])
@pytest.mark.parametrize("cut", ["to zero", "to half a page"])
def test_a_pool_shrunk_after_registration_cannot_crash_the_sidecar(own_hosts, op, cut):
    a, b = own_hosts
    keys, names, size, data = published(a, PAGES)
    fd = os.memfd_create("hostile-pool")
    try:
        os.ftruncate(fd, PAGES * size)
        c = SidecarClient(b.sock_path, 10)
        c.connect()
        pool = c.register(fd, PAGES * size)
        os.ftruncate(fd, 0 if cut == "to zero" else size // 2)
        offsets = [i * size for i in range(PAGES)]
        fresh = ["hostile-%s-%d" % (keys[0], i) for i in range(PAGES)]
        with pytest.raises(SidecarError, match="shrank"):
            if op == "get":
                c.get(pool, names, offsets, size)
            else:
                c.set(pool, fresh, offsets, size)
        assert b.proc.poll() is None, "the sidecar died: %s" % open(b.log_path).read()[-1500:]
        # The pool is gone for good, the connection and the sidecar serve on.
        with pytest.raises(SidecarError, match="shrank|not registered"):
            c.get(pool, names[:1], [0], size)
        assert c.exists(names) == "1" * PAGES
        c.close()
    finally:
        os.close(fd)
    # Nothing was published from the shrunk pool, and a well-behaved rank still reads every byte.
    r, rp = backend(b.sock_path, "mla")
    try:
        assert r.batch_exists(keys) == PAGES
        assert r.batch_get_v1(keys, rp.indices(range(PAGES))) == [True] * PAGES
        assert [rp.read(p) for p in range(PAGES)] == data
        c = SidecarClient(b.sock_path, 10)
        c.connect()
        assert c.exists(["hostile-%s-%d" % (keys[0], i) for i in range(PAGES)]) == "0" * PAGES
        c.close()
    finally:
        r.close()
        rp.close()
    assert b.proc.poll() is None


# A client in its own mount namespace with a disk directory bind-mounted under /dev/shm: the name the
# sidecar reads from /proc/<pid>/fd says "/dev/shm/…", the file is on disk. The sidecar must judge
# the file itself (only shared memory answers F_GET_SEALS), not the text of the link.
_DISGUISED_CLIENT = r"""
import json, os, sys
sys.path.insert(0, sys.argv[1])
from peercache_sglang.client import SidecarClient, SidecarError
sock, path, size, names = sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5].split(",")
fd = os.open(path, os.O_RDWR)
print(json.dumps({"link": os.readlink("/proc/self/fd/%d" % fd)}), flush=True)
c = SidecarClient(sock, 10)
c.connect()
try:
    pool = c.register(fd, size)
except SidecarError as e:
    print(json.dumps({"refused": str(e)}), flush=True)
    sys.exit(0)
print(json.dumps({"registered": pool, "got": c.get(pool, names, [i * (size // len(names)) for i in range(len(names))], size // len(names))}), flush=True)
"""


def _tool(name):
    return any(os.access(os.path.join(d, name), os.X_OK) for d in os.environ.get("PATH", "").split(os.pathsep))


@pytest.mark.skipif(not os.environ.get("CI") and (os.geteuid() != 0 or not _tool("unshare")), reason="needs root and unshare (CI runs it)")
def test_a_disk_file_whose_path_looks_like_shared_memory_is_refused(hosts):
    import json
    import shutil
    import subprocess
    import tempfile
    import uuid

    from harness import ROOT

    a, b = hosts
    keys, names, size, data = published(a, PAGES)
    scratch = os.path.join(ROOT, ".tmp")
    os.makedirs(scratch, exist_ok=True)
    disk = tempfile.mkdtemp(dir=scratch)  # in the checkout: on disk, not tmpfs
    mountpoint = "/dev/shm/pc-disguised-%d-%s" % (os.getpid(), uuid.uuid4().hex[:8])
    os.mkdir(mountpoint, 0o700)
    try:
        path = os.path.join(disk, "pool")
        with open(path, "wb") as f:
            f.write(b"\0" * (PAGES * size))
        assert subprocess.run(["stat", "-f", "-c", "%T", path], capture_output=True, text=True).stdout.strip() != "tmpfs"
        script = "mount --bind %s %s && exec %s -c \"$0\" \"$@\"" % (disk, mountpoint, sys.executable)
        out = subprocess.run(
            ["unshare", "-m", "--propagation", "private", "sh", "-c", script, _DISGUISED_CLIENT,
             os.path.join(ROOT, "python"), b.sock_path, os.path.join(mountpoint, "pool"), str(PAGES * size), ",".join(names)],
            capture_output=True, text=True, timeout=60,
        )
        lines = [json.loads(l) for l in out.stdout.splitlines() if l.startswith("{")]
        assert lines and lines[0]["link"].startswith("/dev/shm/"), (out.stdout, out.stderr)
        assert len(lines) == 2, (out.stdout, out.stderr)
        assert "refused" in lines[1], "the sidecar mapped a disk file named %s: %s" % (lines[0]["link"], lines[1])
        assert "not shared memory" in lines[1]["refused"], lines[1]
        with open(path, "rb") as f:
            assert f.read() == b"\0" * (PAGES * size), "KV bytes were written into a file on disk"
    finally:
        os.rmdir(mountpoint)
        shutil.rmtree(disk, ignore_errors=True)
    assert b.proc.poll() is None
