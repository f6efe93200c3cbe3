"""Sessions on a real cluster: the framework-free store and the Flask session interface."""

from __future__ import annotations

import json
import time
from typing import Any, Dict, List, Tuple

from flask import Flask, session

import ringkv
from ringkv.flask import RingkvSessionInterface
from ringkv.sessions import SessionStore


def app_with(store: SessionStore) -> Flask:
    app = Flask(__name__)
    app.session_interface = RingkvSessionInterface(store)

    @app.route("/visit")
    def visit() -> str:
        session["visits"] = int(session.get("visits", 0)) + 1
        return str(session["visits"])

    @app.route("/peek")
    def peek() -> str:
        return str(session.get("visits", 0))

    @app.route("/logout")
    def logout() -> str:
        session.clear()
        return "bye"

    return app


def test_a_flask_session_lives_while_used_and_expires_once_idle(client: ringkv.Client) -> None:
    store = SessionStore(client, ttl=2.0)
    web = app_with(store).test_client()
    assert web.get("/visit").text == "1"
    assert web.get("/visit").text == "2"
    cookie = web.get_cookie("session")
    assert cookie is not None
    sid = cookie.value
    assert store.load(sid) == {"visits": 2}

    # Read every half second for twice its time to live, never changed: touches keep it.
    for _ in range(8):
        time.sleep(0.5)
        assert web.get("/peek").text == "2", "a session in use expired"
    # Unused for longer than its time to live: gone from every replica.
    time.sleep(3.0)
    assert not client.get("session:" + sid, r=3).found
    assert web.get("/peek").text == "0"


def test_logout_deletes_the_session(client: ringkv.Client) -> None:
    store = SessionStore(client, ttl=60.0)
    web = app_with(store).test_client()
    web.get("/visit")
    cookie = web.get_cookie("session")
    assert cookie is not None
    sid = cookie.value
    assert web.get("/logout").text == "bye"
    assert store.load(sid) is None
    assert web.get("/peek").text == "0"


def _concurrent(client: ringkv.Client, sid: str) -> None:
    """Two saves no one saw the other of: blind writes, kept side by side as siblings."""
    for saved_ms, item in ((1000, "apples"), (2000, "pears")):
        stored = {"saved_ms": saved_ms, "data": {"cart": [item]}}
        client.put("session:" + sid, json.dumps(stored).encode())


def test_concurrent_saves_resolve_to_the_latest_or_through_the_resolver(client: ringkv.Client) -> None:
    sid = SessionStore.new_id()
    _concurrent(client, sid)
    assert len(client.get("session:" + sid).siblings) == 2
    latest = SessionStore(client, ttl=60.0)
    assert latest.load(sid) == {"cart": ["pears"]}
    assert len(client.get("session:" + sid).siblings) == 1, "the resolution was not written back"

    def union(versions: List[Tuple[int, Dict[str, Any]]]) -> Dict[str, Any]:
        items = sorted({item for _, data in versions for item in data.get("cart", [])})
        return {"cart": items}

    sid = SessionStore.new_id()
    _concurrent(client, sid)
    merged = SessionStore(client, ttl=60.0, resolver=union)
    assert merged.load(sid) == {"cart": ["apples", "pears"]}
