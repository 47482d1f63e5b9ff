"""peercache SGLang backend: a HiCacheStorage over the local `peercache node` sidecar.

Load it in SGLang with::

    --hicache-storage-backend dynamic
    --hicache-storage-backend-extra-config '{"backend_name": "peercache",
        "module_path": "peercache_sglang", "class_name": "PeerCacheStorage",
        "interface_v1": 1, "allocator": "shm", "socket": "/run/peercache/peercache.sock"}'
"""
from .backend import PeerCacheStorage, PeerCacheStats
from .client import SidecarClient
from .frames import SidecarError

__all__ = ["PeerCacheStorage", "PeerCacheStats", "SidecarClient", "SidecarError"]
