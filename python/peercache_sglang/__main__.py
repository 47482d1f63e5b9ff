"""python3 -m peercache_sglang: checks this host's sidecar the way SGLang will use it (check.py)."""
import sys

from .check import main

sys.exit(main())
