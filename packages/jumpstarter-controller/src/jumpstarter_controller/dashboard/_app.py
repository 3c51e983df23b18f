"""The dashboard's ASGI app (Starlette): pages rendered on the server, a change feed, actions, metrics.

Pages are rendered with Jinja2 with autoescaping on: labels, status messages and event texts
are always text. A page asked with ``X-Fragment: 1`` answers its main part only: what the
page's script fetches when the change feed (`/events`, Server-Sent Events) says something moved.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from importlib.resources import files
from pathlib import Path
from typing import Any

import anyio
import jinja2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from jumpstarter_controller.credentials import TokenError
from jumpstarter_controller.dashboard._auth import COOKIE, Session, Sessions, csrf_ok
from jumpstarter_controller.dashboard._lab import Lab, Touched
from jumpstarter_controller.dashboard._metrics import Metrics
from jumpstarter_controller.selectors import InvalidSelector, parse

__all__ = ["build_app"]

KEEPALIVE_SECONDS = 15.0
MAX_ROW_DIFF = 200  # more touched rows than this: the page fetches its main part again
LEASE_ROWS = 200  # each table of the leases page shows this many rows at most (the newest)
# Only this origin's own script and style: an injected <script> would not run even if it got through.
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # not no-referrer: with it a form sends Origin: null
}
HERE = Path(str(files("jumpstarter_controller.dashboard")))


def _when(seconds: float | None) -> str:
    if not seconds:
        return "—"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))


def _ago(seconds: float | None) -> str:
    if not seconds:
        return "never"
    delta = max(0.0, time.time() - seconds)
    if delta < 60:
        return f"{delta:.0f} s ago"
    if delta < 3600:
        return f"{delta / 60:.0f} min ago"
    return f"{delta / 3600:.1f} h ago"


def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                                     undefined=jinja2.StrictUndefined)  # fmt: skip
    environment.filters["when"] = _when
    environment.filters["ago"] = _ago
    return environment


def build_app(lab: Lab, sessions: Sessions, metrics: Metrics) -> Starlette:
    environment = _environment()

    def page(request: Request, template: str, session: Session | None, status: int = 200, **values: Any) -> Response:
        fragment = request.headers.get("x-fragment") == "1"
        html = environment.get_template(template).render(
            fragment=fragment, session=session, path=request.url.path, version=lab.version, **values
        )
        return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)

    def current(request: Request) -> Session | None:
        return sessions.get(request.cookies.get(COOKIE))

    def login_first(request: Request) -> Response:
        if request.headers.get("x-fragment") == "1":
            return PlainTextResponse("the session has ended: log in again", status_code=401)
        return RedirectResponse("/login", status_code=303)

    def same_origin(request: Request) -> bool:
        """A POST from a page of this dashboard (browsers send Origin on every POST)."""
        origin = request.headers.get("origin")
        site = request.headers.get("sec-fetch-site")
        if site is not None and site != "same-origin":
            return False
        return origin is not None and origin == f"{request.url.scheme}://{request.url.netloc}"

    async def checked(request: Request) -> tuple[Session, Any] | Response:
        session = current(request)
        if session is None:
            return PlainTextResponse("log in first", status_code=401)
        form = await request.form()
        token = form.get("csrf")
        if not same_origin(request) or not csrf_ok(session, token if isinstance(token, str) else None):
            return PlainTextResponse("refused: this action needs the page's same-site token", status_code=403)
        return session, form

    def namespace_of(session: Session) -> str | None:
        return None if session.admin else session.identity.namespace

    # -- pages -----------------------------------------------------------------------------------

    async def index(request: Request) -> Response:
        return RedirectResponse("/exporters", status_code=303)

    async def exporters(request: Request) -> Response:
        session = current(request)
        if session is None:
            return login_first(request)
        return page(request, "exporters.html", session, exporters=lab.exporters(namespace_of(session)))

    async def leases(request: Request) -> Response:
        session = current(request)
        if session is None:
            return login_first(request)
        selector = request.query_params.get("selector", "")
        error = ""
        try:
            rows = lab.leases(namespace_of(session), selector)
        except InvalidSelector as invalid:
            rows, error = [], f"the selector {selector!r} does not parse: {invalid} (e.g. board=rpi4,site!=lab2)"
        return page(request, "leases.html", session, status=400 if error else 200, leases=rows, selector=selector,
                    error=error, limit=LEASE_ROWS)  # fmt: skip

    async def exporter(request: Request) -> Response:
        session = current(request)
        if session is None:
            return login_first(request)
        namespace, name = request.path_params["namespace"], request.path_params["name"]
        row = lab.exporter(namespace, name)
        if row is None or (not session.admin and namespace != session.identity.namespace):
            return page(request, "missing.html", session, status=404, what=f"exporter {namespace}/{name}")
        return page(request, "exporter.html", session, exporter=row, leases=lab.exporter_leases(namespace, name),
                    history=lab.history(namespace, name), events=await lab.events(namespace, name))  # fmt: skip

    async def clients(request: Request) -> Response:
        session = current(request)
        if session is None:
            return login_first(request)
        if not session.admin:
            return page(request, "missing.html", session, status=403, what="the client list (admin only)")
        return page(request, "clients.html", session, clients=lab.clients())

    # -- login -----------------------------------------------------------------------------------

    def logged_in(session_id: str) -> Response:
        response = RedirectResponse("/exporters", status_code=303)
        response.set_cookie(COOKIE, session_id, max_age=max(1, int(sessions.lifetime)), secure=True, httponly=True,
                            samesite="strict", path="/")  # fmt: skip
        return response

    async def login(request: Request) -> Response:
        if request.method == "GET":
            return page(request, "login.html", None, error="")
        if not same_origin(request):
            return PlainTextResponse("refused: log in from the dashboard's own login page", status_code=403)
        form = await request.form()
        token = form.get("token")
        try:
            if not isinstance(token, str) or not token.strip():
                raise TokenError("paste a client token (the token: line of its config) or the admin credential")
            session_id, _ = sessions.open_with_token(token)
        except TokenError as error:
            return page(request, "login.html", None, status=401, error=str(error))
        return logged_in(session_id)

    async def login_once(request: Request) -> Response:
        if request.method == "GET":
            # A page with a button, not a login on GET: link previewers must not use the link up.
            return page(request, "once.html", None, token=request.query_params.get("t", ""))
        if not same_origin(request):
            return PlainTextResponse("refused: open the link in the browser and press the button", status_code=403)
        form = await request.form()
        token = form.get("t")
        try:
            session_id, _ = sessions.open_with_link(token if isinstance(token, str) else "")
        except TokenError as error:
            return page(request, "login.html", None, status=401, error=str(error))
        return logged_in(session_id)

    async def logout(request: Request) -> Response:
        result = await checked(request)
        if isinstance(result, Response):
            return result
        sessions.close(request.cookies.get(COOKIE))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, path="/", secure=True, httponly=True, samesite="strict")
        return response

    # -- actions ---------------------------------------------------------------------------------

    async def end_lease(request: Request) -> Response:
        result = await checked(request)
        if isinstance(result, Response):
            return result
        session, form = result
        namespace, name = request.path_params["namespace"], request.path_params["name"]
        owner = lab.lease_owner(namespace, name)
        mine = owner is not None and namespace == session.identity.namespace and owner == session.identity.name
        if not (session.admin or mine):
            return PlainTextResponse(f"refused: lease {name} is not yours", status_code=403)
        try:
            await lab.end_lease(namespace, name, session.who)
        except LookupError as error:
            return PlainTextResponse(str(error), status_code=404)
        back = str(form.get("back") or "")
        # Only a path of this dashboard: never a redirect elsewhere.
        return RedirectResponse(back if back.startswith("/") and not back.startswith("//") else "/leases", 303)

    async def enable(request: Request) -> Response:
        result = await checked(request)
        if isinstance(result, Response):
            return result
        session, _ = result
        if not session.admin:
            return PlainTextResponse("refused: only the admin drains or enables exporters", status_code=403)
        namespace, name = request.path_params["namespace"], request.path_params["name"]
        if request.path_params["action"] not in ("drain", "enable"):
            return PlainTextResponse("the actions on an exporter are drain and enable", status_code=404)
        try:
            await lab.set_enabled(namespace, name, request.path_params["action"] == "enable", session.who)
        except LookupError as error:
            return PlainTextResponse(str(error), status_code=404)
        return RedirectResponse(f"/exporters/{namespace}/{name}", status_code=303)

    # -- feed and metrics ------------------------------------------------------------------------

    macros: Any = environment.get_template("_macros.html").module

    # A row diff, for the page's script: {"rows": {key: [table id, row html] or None (gone)}, "counts":
    # {count id: value}}, or {"full": True} if too many rows changed or what changed is no longer known:
    # the page then fetches its main part again. The rows come from the same macros as the pages'.

    def exporter_diff(session: Session, touched: Touched) -> dict[str, Any]:
        if len(touched.exporters) > MAX_ROW_DIFF:
            return {"full": True}
        namespace = namespace_of(session)
        rows: dict[str, Any] = {}
        for (ns, name), row in lab.exporter_rows(namespace, touched.exporters).items():
            rows[f"{ns}/{name}"] = None if row is None else ["exporters", str(macros.exporter_row(row))]
        return {"rows": rows, "counts": {"count-exporters": lab.exporter_count(namespace)}}

    def lease_diff(session: Session, touched: Touched, selector: str) -> dict[str, Any]:
        namespace = namespace_of(session)
        keys = touched.leases
        if selector and touched.exporters:  # an exporter's labels count in the filter
            keys = keys | lab.leases_on(touched.exporters)
        if len(keys) > MAX_ROW_DIFF:
            return {"full": True}
        rows: dict[str, Any] = {}
        for (ns, name), row in lab.lease_rows(namespace, selector, keys).items():
            rows[f"{ns}/{name}"] = None if row is None else [f"leases-{row.state}", str(macros.lease_row(row, session))]
        counts = lab.lease_counts(namespace, selector)
        return {"rows": rows, "counts": {f"count-leases-{state}": count for state, count in counts.items()}}

    def row_diff(session: Session, after: int, rows: str, selector: str) -> dict[str, Any]:
        """The changes after version `after` as a row diff of the `rows` page (exporters, leases)."""
        touched = lab.touched_since(after)
        if touched is None:
            return {"full": True}
        if rows == "exporters":
            return exporter_diff(session, touched)
        return lease_diff(session, touched, selector)

    async def events(request: Request) -> Response:
        if current(request) is None:
            return PlainTextResponse("log in first", status_code=401)
        # The exporters and leases pages ask for their changed rows with each change (one row, not 1,000,
        # moves); the leases page gives its filter too.
        rows = request.query_params.get("rows", "")
        selector = request.query_params.get("selector", "")
        try:
            parse(selector)
        except InvalidSelector:
            rows = ""  # the page says so; it has no rows to change
        if rows not in ("exporters", "leases"):
            rows = ""

        async def feed() -> AsyncIterator[str]:
            version = lab.version
            yield f"retry: 1000\ndata: {json.dumps({'version': version, 'at': lab.changed_at})}\n\n"
            while True:
                sent = version
                session = current(request)
                if session is None:  # expired, logged out, or its token rotated: the page asks to log in
                    yield "event: ended\ndata: {}\n\n"
                    return
                # Wake when the session expires too, so that an idle page still asks to log in again.
                with anyio.move_on_after(min(KEEPALIVE_SECONDS, session.expires - time.time() + 0.01)) as scope:
                    version = await lab.wait_change(version)
                if scope.cancelled_caught:
                    yield ": keepalive\n\n"
                    continue
                if lab.closed:
                    return  # the controller stops: the browser reconnects to the next one
                session = current(request)
                if session is None:
                    yield "event: ended\ndata: {}\n\n"
                    return
                message: dict[str, Any] = {"version": version, "at": lab.changed_at}
                if rows:
                    message.update(row_diff(session, sent, rows, selector))
                yield f"data: {json.dumps(message)}\n\n"

        return StreamingResponse(feed(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})

    async def metrics_endpoint(request: Request) -> Response:
        authorization = request.headers.get("authorization", "")
        allowed = current(request) is not None
        if not allowed and authorization.lower().startswith("bearer "):
            try:
                lab.identify(authorization[7:].strip())
                allowed = True
            except TokenError:
                pass
        if not allowed:
            return PlainTextResponse("metrics need a token: Authorization: Bearer <client token or admin credential>",
                                     status_code=401)  # fmt: skip
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    routes = [
        Route("/", index),
        Route("/exporters", exporters),
        Route("/exporters/{namespace}/{name}", exporter),
        Route("/exporters/{namespace}/{name}/{action:str}", enable, methods=["POST"]),
        Route("/leases", leases),
        Route("/leases/{namespace}/{name}/end", end_lease, methods=["POST"]),
        Route("/clients", clients),
        Route("/login", login, methods=["GET", "POST"]),
        Route("/login/once", login_once, methods=["GET", "POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/events", events),
        Route("/metrics", metrics_endpoint),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    return Starlette(routes=routes, middleware=[], exception_handlers={})
