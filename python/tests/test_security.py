"""Client tokens: a cluster that requires them serves a client with one, refuses others."""

from __future__ import annotations

import pytest

import ringkv
from cluster import Cluster


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
