"""Get and put through the Python clients and through the Rust SDK, side by side, in one run,
against one local cluster: ops/s, p50 and p99. Run with `make bench-python`.

The Rust figures come from `examples/sdk_load.rs` (same operations, keys, value size and
concurrency). Only ratios taken in one run mean anything on a shared 2-core machine. With
BENCH_JSON set, the rows are also written there as JSON (`make compare` reads them).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import ringkv  # noqa: E402
import ringkv.asyncio  # noqa: E402
from cluster import Cluster  # noqa: E402

OPS = int(os.environ.get("BENCH_OPS", "10000"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "64"))
VALUE = b"\x5a" * 1024


def summary(latencies_us: List[float], elapsed: float) -> Dict[str, float]:
    latencies_us.sort()
    pick = lambda p: latencies_us[min(int(len(latencies_us) * p), len(latencies_us) - 1)]  # noqa: E731
    return {"ops_per_sec": len(latencies_us) / elapsed, "p50_us": pick(0.5), "p99_us": pick(0.99)}


def rust(seeds: List[str], op: str) -> Dict[str, float]:
    target = Path(os.environ.get("CARGO_TARGET_DIR") or Path.home() / ".cache/ringkv/target")
    binary = target / "debug" / "examples" / "sdk_load"
    out = subprocess.run(
        [str(binary), ",".join(seeds), op, str(OPS), str(CONCURRENCY), str(len(VALUE))],
        check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout)


def sync_threads(seeds: List[str], op: str) -> Dict[str, float]:
    client = ringkv.Client(seeds)
    latencies: List[float] = []
    lock = threading.Lock()
    counter = iter(range(OPS))

    def work() -> None:
        mine = []
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            t = time.perf_counter()
            if op == "put":
                client.put(f"bench-{i}", VALUE, overwrite=True)
            else:
                client.get(f"bench-{i}")
            mine.append((time.perf_counter() - t) * 1e6)
        with lock:
            latencies.extend(mine)

    started = time.perf_counter()
    threads = [threading.Thread(target=work) for _ in range(CONCURRENCY)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    client.close()
    return summary(latencies, elapsed)


async def asyncio_tasks(seeds: List[str], op: str) -> Dict[str, float]:
    client = ringkv.asyncio.Client(seeds)
    await client.get("warm-up")
    latencies: List[float] = []
    counter = iter(range(OPS))

    async def work() -> None:
        for i in counter:
            t = time.perf_counter()
            if op == "put":
                await client.put(f"bench-{i}", VALUE, overwrite=True)
            else:
                await client.get(f"bench-{i}")
            latencies.append((time.perf_counter() - t) * 1e6)

    started = time.perf_counter()
    await asyncio.gather(*(work() for _ in range(CONCURRENCY)))
    elapsed = time.perf_counter() - started
    await client.close()
    return summary(latencies, elapsed)


def main() -> None:
    cluster = Cluster(3)
    try:
        rows = []
        for op in ("put", "get"):
            runs: Dict[str, Callable[[], Dict[str, float]]] = {
                "Rust SDK": lambda: rust(cluster.addrs, op),
                "Python asyncio": lambda: asyncio.run(asyncio_tasks(cluster.addrs, op)),
                "Python sync (threads)": lambda: sync_threads(cluster.addrs, op),
            }
            base = None
            for name, run in runs.items():
                r = run()
                base = base or r["ops_per_sec"]
                rows.append((op, name, r, r["ops_per_sec"] / base))
        print(f"{OPS} ops of each kind, {CONCURRENCY} concurrent, 1 KiB values, 3 local nodes\n")
        print("| op | client | ops/s | p50 (ms) | p99 (ms) | vs Rust SDK |")
        print("|---|---|---|---|---|---|")
        for op, name, r, ratio in rows:
            print(f"| {op} | {name} | {r['ops_per_sec']:.0f} | {r['p50_us'] / 1000:.2f} | {r['p99_us'] / 1000:.2f} | {ratio:.2f} |")
        out = os.environ.get("BENCH_JSON")
        if out:
            report = {"ops": OPS, "concurrency": CONCURRENCY,
                      "rows": [{"op": op, "client": name, **r} for op, name, r, _ in rows]}
            Path(out).write_text(json.dumps(report, indent=2))
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
