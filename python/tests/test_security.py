"""Client tokens and mutual TLS: a cluster that requires them serves the clients that have
them and refuses the others."""

from __future__ import annotations

from pathlib import Path

import pytest

import ringkv
from cluster import Cluster, TlsFiles


def test_a_cluster_requiring_tokens_serves_only_clients_with_one() -> None:
    cluster = Cluster(3, secret="py-cluster-secret", tokens=["py-app-token"])
    try:
        with ringkv.Client(cluster.addrs, token="py-app-token") as kv:
            kv.put("session:1", b"alice")
            assert kv.get("session:1").value == b"alice"
        for token in [None, "guessed-token"]:
            with pytest.raises(ringkv.RingkvError):
                ringkv.Client(cluster.addrs, token=token, timeout=2.0)
        # The token is never shown, not even in the settings' repr.
        assert "py-app-token" not in repr(ringkv._common.Settings(seeds=["x"], token="py-app-token"))
    finally:
        cluster.stop()


def test_a_cluster_requiring_mutual_tls_serves_only_certified_clients(tmp_path: Path) -> None:
    files = TlsFiles(tmp_path / "pki")
    cluster = Cluster(3, tls=files)
    try:
        with ringkv.Client(cluster.addrs, tls=files.client()) as kv:
            kv.put("cart:1", b"apples")
            assert kv.get("cart:1").value == b"apples"
        # Plain TCP, and TLS without a client certificate, are refused.
        for tls in [None, ringkv.TLS(ca_file=str(files.ca))]:
            with pytest.raises(ringkv.RingkvError):
                ringkv.Client(cluster.addrs, tls=tls, timeout=2.0)
    finally:
        cluster.stop()
