"""Real `ringkvd` processes on free loopback ports, for the tests and the benchmark."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import List

import ringkv


def _target_bin(name: str) -> Path:
    target = os.environ.get("CARGO_TARGET_DIR") or str(Path.home() / ".cache" / "ringkv" / "target")
    return Path(target) / "debug" / name


def ringkvd_bin() -> Path:
    if "RINGKVD_BIN" in os.environ:
        return Path(os.environ["RINGKVD_BIN"])
    return _target_bin("ringkvd")


def ringkv_cli_bin() -> Path:
    """The `ringkv` command line, built next to `ringkvd`."""
    if "RINGKV_CLI_BIN" in os.environ:
        return Path(os.environ["RINGKV_CLI_BIN"])
    return ringkvd_bin().parent / "ringkv"


_given: List[int] = []


def free_port() -> int:
    """A loopback port free for TCP and UDP, never handed out twice by this process."""
    for _ in range(1000):
        with socket.socket() as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            if port in _given:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
        _given.append(port)
        return port
    raise RuntimeError("no free loopback port")


class Cluster:
    def __init__(self, nodes: int) -> None:
        self.dir = tempfile.TemporaryDirectory(prefix="ringkv-py-")
        self.addrs = [f"127.0.0.1:{free_port()}" for _ in range(nodes)]
        self.procs: List[subprocess.Popen] = []  # type: ignore[type-arg]
        binary = ringkvd_bin()
        if not binary.exists():
            raise RuntimeError(f"{binary} not found: build it with `cargo build -p ringkv-server`")
        for i, addr in enumerate(self.addrs):
            seeds = ",".join(a for a in self.addrs if a != addr)
            log = open(Path(self.dir.name) / f"node{i}.log", "wb")
            self.procs.append(
                subprocess.Popen(
                    [str(binary), "--listen", addr, "--data-dir", f"{self.dir.name}/node{i}",
                     "--seeds", seeds, "--cluster-name", f"py-{self.addrs[0]}"],
                    stdout=log, stderr=log, env={**os.environ, "RUST_LOG": "warn"},
                )
            )
        self.found()
        self.wait_until_all_answer()

    def found(self, seconds: float = 30.0) -> None:
        """Makes the running nodes one cluster with `ringkv cluster init`, as an operator would
        (gossip makes nodes known to each other; only the layout makes them members)."""
        deadline = time.monotonic() + seconds
        cli = ringkv_cli_bin()
        while True:
            done = subprocess.run(
                [str(cli), "--seeds", ",".join(self.addrs), "cluster", "init"],
                capture_output=True, text=True,
            )
            if done.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"ringkv cluster init failed: {done.stderr}")
            time.sleep(0.1)

    def wait_until_all_answer(self, seconds: float = 30.0) -> None:
        deadline = time.monotonic() + seconds
        while True:
            try:
                with ringkv.Client(self.addrs) as client:
                    client.get("__ready__", r=len(self.addrs))
                    return
            except ringkv.RingkvError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def kill(self, i: int) -> None:
        self.procs[i].kill()
        self.procs[i].wait()

    def pause(self, i: int) -> None:
        self.procs[i].send_signal(signal.SIGSTOP)

    def resume(self, i: int) -> None:
        self.procs[i].send_signal(signal.SIGCONT)

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGCONT)
                p.kill()
                p.wait()
        self.dir.cleanup()
