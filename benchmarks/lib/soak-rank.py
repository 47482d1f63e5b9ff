"""The soak's SGLang rank: the real adapter (PeerCacheStorage) on a `peercache node` socket, over a
memfd host pool (the tests' stand-in for SGLang's MLA pool), doing set / exists / get round after
round until SIGTERM. Every page's bytes are a function of its key, so every hit is checked, byte
for byte: its own pages read back, and the pages its peer rank (on the other node) published.

    python3 benchmarks/lib/soak-rank.py <socket> <name> <peer name> <poll_us> <progress dir>

Each rank writes its latest published generation to <progress dir>/<name>.gen; its peer reads the
pages of the peer's latest generations from there (ranks run at different paces).

Prints one JSON line of counters every 2 s and at the end.
"""
import json
import os
import random
import signal
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "python"))
sys.path.insert(0, os.path.join(ROOT, "python", "tests"))

from harness import MLAPageFirstPool, RankConfig  # noqa: E402
from peercache_sglang import PeerCacheStorage  # noqa: E402

BATCH = 16
BACK = 4  # generations of the peer's keys asked for each round


def key(name: str, gen: int, i: int) -> str:
    return ("%s-%08d-%04d" % (name, gen, i)).ljust(64, "0")


def main() -> int:
    sock, name, peer, poll_us, progress = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5]
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    pool = MLAPageFirstPool(pages=4 * BATCH, memfd=True)
    size = pool.object_bytes
    storage = PeerCacheStorage(RankConfig(True, extra=dict(socket=sock, interface_v1=1, timeout_s=10.0, retry_s=0.1, poll_us=poll_us)), {})
    storage.register_mem_pool_host(pool)

    def content(k: str) -> bytes:
        return random.Random(k).randbytes(size)

    n = dict(rank=name, rounds=0, calls=0, set_ok=0, set_failed=0, exists_found=0, exists_short=0, own_hits=0, own_misses=0, peer_hits=0, peer_misses=0, wrong_pages=0, bad_answers=0)
    last = 0.0
    gen = 0

    def check(keys, first_page):
        """Reads keys into pages first_page.. (zeroed first); (hits, misses, wrong)."""
        pages = range(first_page, first_page + len(keys))
        for p in pages:
            pool.zero(p)
        got = storage.batch_get_v1(keys, pool.indices(pages))
        n["calls"] += 1
        if not (isinstance(got, list) and len(got) == len(keys) and all(isinstance(x, bool) for x in got)):
            n["bad_answers"] += 1
            return 0, 0, 0
        hits = misses = wrong = 0
        for j, ok in enumerate(got):
            if not ok:
                misses += 1
                continue
            hits += 1
            if pool.read(first_page + j)[0] != content(keys[j]):
                wrong += 1
        return hits, misses, wrong

    while not stop:
        gen += 1
        keys = [key(name, gen, i) for i in range(BATCH)]
        for j, k in enumerate(keys):
            o, _ = pool.object_ranges(j)[0]
            pool.map[o:o + size] = content(k)
        ok = storage.batch_set_v1(keys, pool.indices(range(BATCH)))
        n["calls"] += 1
        n["set_ok"] += sum(1 for x in ok if x is True)
        n["set_failed"] += sum(1 for x in ok if x is not True)
        mine = os.path.join(progress, name + ".gen")
        with open(mine + ".tmp", "w") as f:
            f.write(str(gen))
        os.replace(mine + ".tmp", mine)
        found = storage.batch_exists(keys)
        n["calls"] += 1
        if not isinstance(found, int):
            n["bad_answers"] += 1
        elif found == BATCH:
            n["exists_found"] += 1
        else:
            n["exists_short"] += 1
        h, m, w = check(keys, BATCH)
        n["own_hits"] += h
        n["own_misses"] += m
        n["wrong_pages"] += w
        # The peer's latest pages (misses are possible: not yet published, evicted; wrong bytes never).
        try:
            with open(os.path.join(progress, peer + ".gen")) as f:
                peer_gen = int(f.read() or 0)
        except (OSError, ValueError):
            peer_gen = 0
        theirs = [key(peer, g, i) for g in range(max(1, peer_gen - BACK + 1), peer_gen + 1) for i in range(0, BATCH, BACK)] or [key(peer, 1, 0)]
        h, m, w = check(theirs[: 2 * BATCH], 2 * BATCH)
        n["peer_hits"] += h
        n["peer_misses"] += m
        n["wrong_pages"] += w
        n["rounds"] += 1
        now = time.monotonic()
        if now - last >= 2.0:
            last = now
            st = storage.adapter_stats()
            print(json.dumps(dict(n, errors=st.errors, reconnects=st.reconnects, connect_failures=st.connect_failures)), flush=True)
    st = storage.adapter_stats()
    print(json.dumps(dict(n, errors=st.errors, reconnects=st.reconnects, connect_failures=st.connect_failures, final=True)), flush=True)
    storage.close()
    pool.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
