"""Real `ringkvd` processes on free loopback ports, for the tests and the benchmark."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import List, Optional, Sequence

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


class TlsFiles:
    """A CA, a certificate for the nodes (for 127.0.0.1) and one for clients, made with the
    openssl command in `directory`."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.ca = directory / "ca.pem"
        ca_key = directory / "ca.key"
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", str(ca_key), "-out", str(self.ca), "-days", "2",
                 "-subj", "/CN=ringkv-test-ca",
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        self.node_cert, self.node_key = self._issue(directory, "node", ca_key)
        self.client_cert, self.client_key = self._issue(directory, "client", ca_key)

    def _issue(self, directory: Path, name: str, ca_key: Path) -> "tuple[Path, Path]":
        key, csr, cert = (directory / f"{name}.{ext}" for ext in ("key", "csr", "pem"))
        ext = directory / f"{name}.ext"
        ext.write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n"
                       "basicConstraints=CA:FALSE\n")
        _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", str(key), "-out", str(csr), "-subj", f"/CN=ringkv-{name}")
        _openssl("x509", "-req", "-in", str(csr), "-CA", str(self.ca), "-CAkey", str(ca_key),
                 "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext))
        return cert, key

    def client(self) -> ringkv.TLS:
        return ringkv.TLS(ca_file=str(self.ca), cert_file=str(self.client_cert),
                          key_file=str(self.client_key))


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _all_threads_stopped(pid: int) -> bool:
    """Whether every thread of `pid` is in the stopped state (`T` in /proc)."""
    tasks = Path(f"/proc/{pid}/task")
    try:
        for task in tasks.iterdir():
            stat = (task / "stat").read_text()
            # The state follows the parenthesised command name.
            if stat.rsplit(")", 1)[1].split()[0] != "T":
                return False
    except (OSError, IndexError):
        return False
    return True


class Cluster:
    def __init__(
        self,
        nodes: int,
        secret: Optional[str] = None,
        tokens: Sequence[str] = (),
        tls: Optional["TlsFiles"] = None,
    ) -> None:
        """`secret` and `tokens`: the cluster secret and client tokens every node gets (in
        files); the cluster's own calls then prove the secret, `self.token` the first token.
        `tls`: every node requires mutual TLS with these files; the cluster's calls use them."""
        self.dir = tempfile.TemporaryDirectory(prefix="ringkv-py-")
        self.token: Optional[str] = tokens[0] if tokens else None
        self.tls = tls
        security: List[str] = []
        if tls is not None:
            security += ["--tls-cert-file", str(tls.node_cert), "--tls-key-file", str(tls.node_key),
                         "--tls-ca-file", str(tls.ca), "--tls-client-ca-file", str(tls.ca)]
        self.secret_file: Optional[Path] = None
        if secret is not None:
            self.secret_file = Path(self.dir.name) / "cluster.secret"
            self.secret_file.write_text(secret + "\n")
            security += ["--cluster-secret-file", str(self.secret_file)]
        if tokens:
            tokens_file = Path(self.dir.name) / "client.tokens"
            tokens_file.write_text("\n".join(tokens) + "\n")
            security += ["--client-tokens-file", str(tokens_file)]
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
                     "--seeds", seeds, "--cluster-name", f"py-{self.addrs[0]}", *security],
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
        secret = ["--cluster-secret-file", str(self.secret_file)] if self.secret_file else []
        if self.tls is not None:
            secret += ["--tls-ca-file", str(self.tls.ca), "--tls-cert-file", str(self.tls.client_cert),
                       "--tls-key-file", str(self.tls.client_key)]
        while True:
            done = subprocess.run(
                [str(cli), "--seeds", ",".join(self.addrs), *secret, "cluster", "init"],
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
                tls = self.tls.client() if self.tls else None
                with ringkv.Client(self.addrs, token=self.token, tls=tls) as client:
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
        """SIGSTOP node `i`, and wait until every thread of it has stopped: kill(2) returns
        before a thread running on another CPU is interrupted, and under load that thread can
        still answer a request or two."""
        self.procs[i].send_signal(signal.SIGSTOP)
        deadline = time.monotonic() + 2.0
        while not _all_threads_stopped(self.procs[i].pid) and time.monotonic() < deadline:
            time.sleep(0.001)

    def resume(self, i: int) -> None:
        self.procs[i].send_signal(signal.SIGCONT)

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGCONT)
                p.kill()
                p.wait()
        self.dir.cleanup()
