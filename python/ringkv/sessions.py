"""Web sessions on ringkv, for any framework: a session is a JSON dict under a random id that
expires on every replica once unused, and slides while it is used.

``SessionStore`` is framework-free (``load``/``save``/``delete``); ``ringkv.flask`` plugs it
into Flask. The servers' clocks decide expiry (see the README); nothing scans for expired
sessions.

Concurrent saves of one session (two requests on two app servers) are the application's
choice: by default the save made last wins (by the saving process's clock), or a
``resolver`` merges the versions, for example the union of two carts. A load that finds
several versions resolves them and writes the result back, so the next reader finds one.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from ._client import Client

Session = Dict[str, Any]
SessionResolver = Callable[[List[Tuple[int, Session]]], Session]


def latest_saved(versions: List[Tuple[int, Session]]) -> Session:
    """The default resolver: the version saved last (each comes with its save time, in ms)."""
    return max(versions, key=lambda v: (v[0], json.dumps(v[1], sort_keys=True)))[1]


class SessionStore:
    """Sessions in ``bucket`` of ``client``, each alive ``ttl`` seconds after it was last saved
    or, with ``sliding`` (the default), last loaded: a load extends it with a touch, a small
    replicated write of a new expiry that does not rewrite the session."""

    def __init__(
        self,
        client: Client,
        *,
        bucket: Optional[str] = None,
        ttl: float = 1800.0,
        sliding: bool = True,
        resolver: SessionResolver = latest_saved,
    ) -> None:
        self._client = client
        self._bucket = bucket
        self.ttl = ttl
        self._sliding = sliding
        self._resolver = resolver

    @staticmethod
    def new_id() -> str:
        """A fresh session id: 256 random bits, URL-safe."""
        return secrets.token_urlsafe(32)

    def load(self, sid: str) -> Optional[Session]:
        """The session ``sid``, or None if it does not exist or has expired."""
        key = self._key(sid)
        if self._sliding:
            try:
                read = self._client.get(key, bucket=self._bucket, touch=self.ttl)
            except Exception:
                # The touch failed (too few replicas took it): still read the session,
                # which keeps the life it had.
                read = self._client.get(key, bucket=self._bucket)
        else:
            read = self._client.get(key, bucket=self._bucket)
        versions: List[Tuple[int, Session]] = []
        for raw in read.siblings:
            try:
                stored = json.loads(raw)
                versions.append((int(stored["saved_ms"]), dict(stored["data"])))
            except (ValueError, KeyError, TypeError):
                continue  # Not a session this store wrote.
        if not versions:
            return None
        if len(versions) == 1:
            return versions[0][1]
        merged = self._resolver(versions)
        self.save(sid, merged)
        return merged

    def save(self, sid: str, data: Session) -> None:
        """Writes the session, superseding every version the stamping node holds (last
        writer wins), alive ``ttl`` seconds from now."""
        stored = json.dumps({"saved_ms": int(time.time() * 1000), "data": data}).encode()
        self._client.put(self._key(sid), stored, overwrite=True, ttl=self.ttl, bucket=self._bucket)

    def delete(self, sid: str) -> None:
        """Deletes the session (a logout)."""
        self._client.delete(self._key(sid), bucket=self._bucket)

    @staticmethod
    def _key(sid: str) -> str:
        return "session:" + sid
