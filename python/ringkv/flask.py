"""Flask sessions on ringkv: ``app.session_interface = RingkvSessionInterface(store)``.

The session cookie holds only the session's id; the session itself is in ringkv (see
``ringkv.sessions``), expires with the store's ``ttl``, and slides while it is used.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

from flask import Flask, Request, Response
from flask.sessions import SessionInterface, SessionMixin
from werkzeug.datastructures import CallbackDict

from .sessions import SessionStore


class RingkvSession(CallbackDict[str, Any], SessionMixin):
    """A Flask session backed by ringkv: ``modified`` once any field changed."""

    def __init__(self, initial: Optional[Mapping[str, Any]] = None, *, sid: str, new: bool) -> None:
        def on_update(session: CallbackDict[str, Any]) -> None:
            self.modified = True

        super().__init__(initial, on_update)
        self.sid = sid
        self.new = new
        self.modified = False


class RingkvSessionInterface(SessionInterface):
    """Loads the session named by the cookie from ``store`` on each request, and saves it
    when it changed (an unchanged one is kept alive by the load's touch)."""

    def __init__(self, store: SessionStore) -> None:
        self.store = store

    def open_session(self, app: Flask, request: Request) -> RingkvSession:
        sid = request.cookies.get(self.get_cookie_name(app))
        if sid:
            data = self.store.load(sid)
            if data is not None:
                return RingkvSession(data, sid=sid, new=False)
        return RingkvSession(sid=self.store.new_id(), new=True)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        assert isinstance(session, RingkvSession)
        name = self.get_cookie_name(app)
        domain = self.get_cookie_domain(app)
        path = self.get_cookie_path(app)
        if not session:
            if session.modified and not session.new:
                self.store.delete(session.sid)
                response.delete_cookie(name, domain=domain, path=path)
            return
        if session.modified:
            self.store.save(session.sid, dict(session))
        if session.modified or session.new or self.should_set_cookie(app, session):
            response.set_cookie(
                name,
                session.sid,
                max_age=int(self.store.ttl),
                httponly=self.get_cookie_httponly(app),
                secure=self.get_cookie_secure(app),
                samesite=self.get_cookie_samesite(app),
                domain=domain,
                path=path,
            )
