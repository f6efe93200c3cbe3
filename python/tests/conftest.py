"""A real local cluster for the tests: `ringkvd` processes on free loopback ports, each with
its own data directory, all killed when the fixture ends."""

from __future__ import annotations

from typing import Iterator

import pytest

import ringkv
from cluster import Cluster, free_port

__all__ = ["free_port"]


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    """A cluster shared by the tests that do not harm it."""
    c = Cluster(3)
    yield c
    c.stop()


@pytest.fixture
def own_cluster() -> Iterator[Cluster]:
    """A cluster for one test that kills or pauses nodes."""
    c = Cluster(3)
    yield c
    c.stop()


@pytest.fixture
def client(cluster: Cluster) -> Iterator[ringkv.Client]:
    with ringkv.Client(cluster.addrs) as c:
        yield c
