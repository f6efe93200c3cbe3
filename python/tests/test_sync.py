from __future__ import annotations

import builtins
import threading
import time
import uuid
from typing import Optional

import pytest
from hypothesis import given, settings, strategies as st

import ringkv


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex}"


def test_round_trip_with_str_and_bytes_keys(client: ringkv.Client) -> None:
    key = unique("k")
    receipt = client.put(key, b"hello")
    assert len(receipt.home) >= 2 and receipt.fallback == []
    result = client.get(key.encode())
    assert result.found and result.value == b"hello" and result.siblings == [b"hello"]
    client.put(key, b"again", context=result.context)
    assert client.get(key).value == b"again"
    client.delete(key, context=client.get(key).context)
    gone = client.get(key)
    assert not gone.found and gone.value is None and gone.context


def test_a_value_written_with_a_ttl_expires_and_keeps_its_context(client: ringkv.Client) -> None:
    key = unique("session")
    client.put(key, b"alice", ttl=1.0)
    client.put(key + "-kept", b"bob")
    assert client.get(key).value == b"alice"
    time.sleep(1.5)
    gone = client.get(key, r=3)
    assert not gone.found and gone.value is None and gone.context, "expired, with its version"
    assert client.get(key + "-kept").value == b"bob"
    with pytest.raises(ringkv.InvalidArgument):
        client.put(key, b"x", ttl=-1.0)


def test_a_session_read_with_touch_outlives_its_ttl(client: ringkv.Client) -> None:
    key = unique("session")
    client.put(key, b"alice", ttl=2.0)
    for _ in range(4):
        time.sleep(0.8)
        assert client.get(key, touch=2.0).value == b"alice"
    time.sleep(2.5)
    assert not client.get(key, r=3).found


def test_two_writers_alternating_with_what_their_own_writes_returned(client: ringkv.Client) -> None:
    """A write returns what it left, like a read: two writers (two requests of one web
    session) update a set on one key in turns, each with its own last write's receipt and
    no read in between. Every element stays, and at most two siblings remain."""
    key = unique("cart")
    last: dict[str, Optional[ringkv.Receipt]] = {"a": None, "b": None}
    added: set[str] = set()
    for n in range(6):
        for writer in ("a", "b"):
            receipt = last[writer]
            elements: set[str] = set()
            for sibling in receipt.siblings if receipt else []:
                elements |= set(sibling.decode().split(",")) - {""}
            element = f"{writer}{n}"
            elements.add(element)
            added.add(element)
            last[writer] = client.put(
                key,
                ",".join(sorted(elements)).encode(),
                context=receipt.context if receipt else None,
            )
            written = last[writer]
            assert written is not None and written.context
            assert ",".join(sorted(elements)).encode() in written.siblings
    final = client.get(key)
    assert len(final.siblings) <= 2, final.siblings
    held: set[str] = set()
    for sibling in final.siblings:
        held |= set(sibling.decode().split(","))
    assert added <= held, added - held


def test_a_sealed_context_is_refused_once_altered_or_unsealed(cluster) -> None:  # type: ignore[no-untyped-def]
    key = unique("sealed")
    with ringkv.Client(cluster.addrs, context_key=b"app key") as kv, ringkv.Client(cluster.addrs) as plain:
        kv.put(key, b"v1")
        read = kv.get(key)
        assert read.context[:1] == b"S"
        kv.put(key, b"v2", context=read.context)
        assert kv.get(key).value == b"v2"
        altered = read.context[:-1] + bytes([read.context[-1] ^ 1])
        with pytest.raises(ringkv.InvalidArgument):
            kv.put(key, b"forged", context=altered)
        with pytest.raises(ringkv.InvalidArgument):
            kv.put(key, b"unsealed", context=plain.get(key).context)
        other = unique("sealed-other")
        kv.put(other, b"o")
        with pytest.raises(ringkv.InvalidArgument):
            kv.put(other, b"moved", context=read.context)
        assert kv.get(key).value == b"v2"


def test_mapping_interface(client: ringkv.Client) -> None:
    key = unique("m")
    assert key not in client
    client[key] = b"v1"
    client[key] = b"v2"
    assert key in client and client[key] == b"v2"
    del client[key]
    with pytest.raises(KeyError):
        client[key]


def test_concurrent_writes_become_siblings_and_a_resolver_merges_them(client: ringkv.Client) -> None:
    key = unique("cart")
    client.put(key, b"milk")
    seen = client.get(key)
    client.put(key, b"milk,eggs", context=seen.context)
    client.put(key, b"milk,bread", context=seen.context)
    both = client.get(key, r=3)
    assert sorted(both.siblings) == [b"milk,bread", b"milk,eggs"] and both.value is None
    with pytest.raises(ringkv.ContextRequired) as info:
        client.put(key, b"blind")
    assert info.value.siblings == 2
    # Assignment refuses too: it would silently discard all siblings but one.
    with pytest.raises(ringkv.ContextRequired) as assigned:
        client[key] = b"assigned"
    assert assigned.value.siblings == 2

    def union(siblings: list[bytes]) -> bytes:
        return b",".join(sorted({item for s in siblings for item in s.split(b",")}))

    merged = client.get(key, r=3, resolver=union, write_back=True)
    assert merged.value == b"bread,eggs,milk"
    assert client.get(key, r=3).siblings == [b"bread,eggs,milk"], "write_back resolved it"


def test_buckets_and_url(cluster, client: ringkv.Client) -> None:  # type: ignore[no-untyped-def]
    key = unique("b")
    client.put(key, b"in carts", bucket="carts")
    assert not client.get(key).found
    url = "ringkv://" + ",".join(cluster.addrs) + "/?r=3&w=3&timeout=2.5"
    with ringkv.Client.from_url(url, bucket="carts") as other:
        assert other.get(key).value == b"in carts"
        assert len(other.put(unique("w3"), b"x").home) == 3


def test_bad_input_raises_the_right_exception_class(cluster, client: ringkv.Client) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ringkv.InvalidArgument, match="r = 4"):
        client.get("k", r=4)
    with pytest.raises(ValueError):
        client.put("k", b"v", w=9)
    for url in ["http://x:1", "ringkv://", "ringkv://h:1/?q=1", "ringkv://h:1/?r=two"]:
        with pytest.raises(ringkv.InvalidArgument):
            ringkv.Client.from_url(url)
    with pytest.raises(ringkv.InvalidArgument):
        client.put("k", b"v", context=b"\x09garbage")
    with pytest.raises(ringkv.ServerError, match="exceeds the limit"):
        client.put("x" * 70_000, b"v")
    with pytest.raises(TypeError):
        client.put("k", "not bytes")  # type: ignore[arg-type]
    with pytest.raises(ringkv.ConnectionError) as info:
        ringkv.Client([f"127.0.0.1:{_closed_port()}"])
    assert isinstance(info.value, builtins.ConnectionError)


def _closed_port() -> int:
    from cluster import free_port

    return free_port()


def test_close_is_idempotent_and_later_calls_say_so(cluster) -> None:  # type: ignore[no-untyped-def]
    c = ringkv.Client(cluster.addrs)
    c.close()
    c.close()
    assert c.closed
    with pytest.raises(ringkv.ConnectionError, match="closed"):
        c.get("k")


def test_flush_waits_for_what_writes_still_send(cluster) -> None:  # type: ignore[no-untyped-def]
    c = ringkv.Client(cluster.addrs)
    key = unique("flush")
    c.put(key, b"v")
    assert c.flush(5.0) is True
    with pytest.raises(ringkv.RingkvError, match="positive number of seconds"):
        c.flush(-1.0)
    c.close()
    # Closed: nothing is owed any more.
    assert c.flush() is True


def test_many_threads_share_one_client(client: ringkv.Client) -> None:
    errors: list[BaseException] = []
    prefix = unique("t")

    def work(n: int) -> None:
        try:
            for i in range(25):
                key = f"{prefix}-{n}-{i}"
                client.put(key, str(i).encode())
                assert client.get(key).value == str(i).encode()
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors[:3]
    assert len(client.get_many([f"{prefix}-{n}-0" for n in range(16)])) == 16


@settings(max_examples=40, deadline=None)
@given(key=st.binary(min_size=0, max_size=64), value=st.binary(max_size=2048))
def test_any_bytes_round_trip(cluster, key: bytes, value: bytes) -> None:  # type: ignore[no-untyped-def]
    with ringkv.Client(cluster.addrs) as c:
        c.put(key, value, overwrite=True)
        assert c.get(key, r=3).value == value


def test_failures_raise_timeout_quorum_and_unavailable(own_cluster) -> None:  # type: ignore[no-untyped-def]
    with ringkv.Client(own_cluster.addrs) as c:
        c.put("k", b"v")
        own_cluster.pause(2)
        with pytest.raises(ringkv.TimeoutError) as timeout:
            c.get("k", r=3, timeout=0.3)
        assert isinstance(timeout.value, builtins.TimeoutError) and not timeout.value.in_doubt
        own_cluster.resume(2)
        own_cluster.kill(1)
        own_cluster.kill(2)
        with pytest.raises(ringkv.QuorumError) as quorum:
            c.put("k2", b"v", w=2)
        assert quorum.value.required == 2 and quorum.value.succeeded <= 1
        with pytest.raises(ringkv.UnavailableError) as unavailable:
            c.put("k3", b"v", pw=2)
        assert (unavailable.value.required, unavailable.value.alive) == (2, 1)
        receipt = c.put("k4", b"v", w=1)
        assert len(receipt.home) + len(receipt.fallback) == 1, "one node left, one ack"
        # dw raises the acknowledgements waited for: one node left cannot give two durable ones.
        with pytest.raises((ringkv.QuorumError, ringkv.UnavailableError)):
            c.put("k5", b"v", w=1, dw=2)
        with pytest.raises(ringkv.InvalidArgument):
            c.put("k5", b"v", dw=4)


def test_a_peer_that_speaks_another_protocol_raises_protocol_error() -> None:
    """A server that answers the handshake with bytes that are not a ringkv frame."""
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    port = listener.getsockname()[1]

    def serve() -> None:
        for _ in range(4):
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(1024)
                conn.sendall(b"\x00\x00\x00\x03abc")

    threading.Thread(target=serve, daemon=True).start()
    try:
        with pytest.raises(ringkv.ProtocolError):
            ringkv.Client([f"127.0.0.1:{port}"])
    finally:
        listener.close()


def test_the_process_exits_cleanly_with_open_clients(cluster) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    code = (
        "import ringkv, ringkv.asyncio, asyncio\n"
        f"c = ringkv.Client({cluster.addrs!r})\n"
        "c.put('exit-test', b'v')\n"
        f"a = ringkv.asyncio.Client({cluster.addrs!r})\n"
        "asyncio.run(a.put('exit-test-2', b'v'))\n"
        "print('done')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr.decode()
    assert out.stdout.strip() == b"done"


def test_get_many_reads_every_key_and_a_failing_key_keeps_the_others(client: ringkv.Client) -> None:
    prefix = unique("many")
    written = {f"{prefix}-{i}": str(i).encode() for i in range(0, 40, 2)}
    for key, value in written.items():
        client.put(key, value)
    keys = [f"{prefix}-{i}" for i in range(40)]
    results = client.get_many(keys)
    assert list(results) == keys
    for key in keys:
        assert results[key].value == written.get(key), key
        assert results[key].found == (key in written)
        assert results[key].context == client.get(key).context
    # A key the nodes refuse fails alone: the others are read all the same.
    too_long = b"k" * (70 * 1024)
    with pytest.raises(ringkv.BatchError) as failed:
        client.get_many(keys[:4] + [too_long])
    assert set(failed.value.errors) == {too_long}
    assert isinstance(failed.value.errors[too_long], ringkv.ServerError)
    assert {k: r.value for k, r in failed.value.results.items()} == {
        k: written.get(k) for k in keys[:4]
    }
