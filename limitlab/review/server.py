"""The review page's web app (Starlette): the page and its two static files, a JSON API over the
suspects and decisions, and PNGs by (split, index). Safe by default: every request needs the token
(given once in the URL, then an HttpOnly SameSite=Strict cookie), requests that change state carry
it in a header too, the Host header must name this machine (DNS rebinding), examples are served by
index only, and every answer has a Content-Security-Policy that allows nothing outside the page."""

from __future__ import annotations

import base64
import hmac
import json
import secrets
from importlib import resources

import numpy as np

from .cards import SIZES, Cards
from .export import label_after, summarize
from .source import ReviewData
from .state import DECISIONS, WITH_LABEL, Decisions

COOKIE = "limitlab_review"
PAGE = 100
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
           "X-Frame-Options": "DENY", "Cache-Control": "no-store"}


def _static(name: str) -> bytes:
    return resources.files("limitlab.review").joinpath("static", name).read_bytes()


class Review:
    """The state behind the page: suspects, standing decisions, cards."""

    def __init__(self, data: ReviewData, decisions: Decisions):
        self.data, self.decisions, self.cards = data, decisions, Cards(data)
        self.keys = [data.key(i) for i in range(len(data.index))]
        self.row_of = {k: i for i, k in enumerate(self.keys)}
        self.suggested = data.suggested
        self._flagged = int(data.flagged.sum())
        self._wrong = None if data.true is None else int((data.given != data.true).sum())

    def decision(self, i: int) -> dict | None:
        """Suspect ``i``'s standing decision, or None."""
        return self.decisions.get(self.keys[i])

    def start(self) -> int:
        """The highest-ranked suspect without a standing decision (0 when all are decided)."""
        return next((i for i, k in enumerate(self.keys) if self.decisions.get(k) is None), 0)

    def summary(self) -> dict:
        """The running summary the page shows (:func:`summarize` over the decided suspects, plus the
        number flagged and still to go); its cost grows with the decisions, not the suspects."""
        rows = sorted(self.row_of[k] for k in list(self.decisions.standing) if k in self.row_of)
        true = None if self.data.true is None else self.data.true[rows]
        s = summarize([self.keys[i] for i in rows], self.data.given[rows], true, self.decisions)
        s["suspects"] = len(self.keys)
        if true is not None:
            s["wrong_labels_in_suspects"] = self._wrong
        s["flagged"] = self._flagged
        s["to_go"] = self._flagged - int(self.data.flagged[rows].sum())
        return s

    def matching(self, q: dict) -> np.ndarray:
        """Suspect positions that pass the grid's filters (given, suggested, decision, min_score, flagged)."""
        d = self.data
        keep = np.ones(len(self.keys), bool)
        if q.get("given") not in (None, ""):
            keep &= d.given == int(q["given"])
        if q.get("suggested") not in (None, ""):
            keep &= self.suggested == int(q["suggested"])
        if q.get("min_score") not in (None, ""):
            keep &= d.score >= float(q["min_score"])
        if q.get("flagged") in ("1", 1, True, "true"):
            keep &= d.flagged
        want = q.get("decision")
        if want not in (None, "", "any"):
            now = np.array([(self.decisions.get(k) or {}).get("decision", "undecided") for k in self.keys])
            keep &= (now != "undecided") if want == "decided" else (now == want)
        return np.flatnonzero(keep)

    def row(self, i: int) -> dict:
        """Suspect ``i`` as one grid tile."""
        d, names = self.data, self.data.class_names
        dec = self.decision(i)
        return {"id": int(i), "rank": int(i) + 1, "index": int(d.index[i]), "split": str(d.split[i]),
                "given": names[int(d.given[i])], "suggested": names[int(self.suggested[i])],
                "suggested_id": int(self.suggested[i]), "p": round(float(d.top_p[i][0]), 3),
                "score": round(float(d.score[i]), 4), "flagged": bool(d.flagged[i]),
                "decision": None if dec is None else dec["decision"],
                "label": None if dec is None or dec["decision"] not in WITH_LABEL else names[int(dec["label"])]}

    def confusion(self) -> dict:
        """Given → suggested counts of the flagged suspects, and of those still undecided."""
        k = len(self.data.class_names)
        m = np.zeros((k, k), int)
        open_ = np.zeros((k, k), int)
        flagged = np.flatnonzero(self.data.flagged)
        np.add.at(m, (self.data.given[flagged], self.suggested[flagged]), 1)
        undecided = [i for i in flagged if self.decisions.get(self.keys[i]) is None]
        if undecided:
            np.add.at(open_, (self.data.given[undecided], self.suggested[undecided]), 1)
        return {"counts": m.tolist(), "undecided": open_.tolist()}

    def labels(self) -> np.ndarray:
        """Each suspect's label after the review (−1 = excluded), in rank order."""
        return np.array([label_after(self.decisions.get(k), g) for k, g in zip(self.keys, self.data.given)])


def build_app(review: Review, token: str | None = None, hosts: tuple = ("127.0.0.1", "localhost"),
              on_done=None, title: str = ""):
    """The Starlette app. ``hosts``: the host names the Host header may carry; ``on_done``: called
    when the reviewer presses Done (the Python API), None hides the button."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.trustedhost import TrustedHostMiddleware
    from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
    from starlette.routing import Route

    token = token or secrets.token_urlsafe(24)
    page = _static("index.html").decode()
    assets = {"app.js": (_static("app.js"), "text/javascript"), "grid.js": (_static("grid.js"), "text/javascript"),
              "style.css": (_static("style.css"), "text/css")}

    def authorised(request, write: bool = False) -> bool:
        cookie = request.cookies.get(COOKIE, "")
        ok = hmac.compare_digest(cookie.encode(), token.encode())
        if write:  # state changes also carry the token in a header (not sent by a cross-site form)
            ok = ok and hmac.compare_digest(request.headers.get("x-review-token", "").encode(), token.encode())
        return ok

    def denied():
        return Response("forbidden: open the URL with the token that `limitlab review` printed", 403,
                        media_type="text/plain")

    def guard(write: bool = False):
        def wrap(handler):
            async def endpoint(request):
                if not authorised(request, write):
                    return denied()
                try:
                    return await handler(request)
                except (KeyError, ValueError, IndexError, TypeError) as e:
                    return JSONResponse({"error": f"bad request ({type(e).__name__})"}, 400)
            return endpoint
        return wrap

    async def index(request):
        given = request.query_params.get("token")
        if given is not None:
            if not hmac.compare_digest(given.encode(), token.encode()):
                return denied()
            response = RedirectResponse("/", 303)  # the token leaves the address bar and the history
            response.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/")
            return response
        if not authorised(request):
            return denied()
        meta = json.dumps(token)[1:-1]
        # the state and the first card come with the page (a JSON data block, not a script): no round trips
        start = review.start()
        boot = {"state": state_dict(), "card": review.cards.card(start, review.decision(start))}
        if review.data.kind == "image":
            png = review.cards.png(*review.keys[start], "card")
            boot["card"]["image_data"] = "data:image/png;base64," + base64.b64encode(png).decode()
        boot_json = json.dumps(boot).replace("<", "\\u003c")
        return HTMLResponse(page.replace("{{TOKEN}}", meta).replace("{{TITLE}}", _escape(title or review.data.title))
                            .replace("{{BOOT}}", boot_json))

    @guard()
    async def static(request):
        if request.path_params["name"] not in assets:
            return Response("not found", 404, media_type="text/plain")
        body, media = assets[request.path_params["name"]]
        return Response(body, media_type=media)

    def state_dict() -> dict:
        d = review.data
        return {"title": title or d.title, "kind": d.kind, "classes": d.class_names, "n": len(review.keys),
                "start": review.start(), "summary": review.summary(), "page": PAGE, "done_button": on_done is not None}

    @guard()
    async def state(request):
        return JSONResponse(state_dict())

    @guard()
    async def suspects(request):
        q = dict(request.query_params)
        rows = review.matching(q)
        offset, limit = int(q.get("offset", 0)), min(int(q.get("limit", PAGE)), 1000)
        return JSONResponse({"total": len(rows), "offset": offset,
                             "rows": [review.row(int(i)) for i in rows[offset:offset + limit]]})

    @guard()
    async def card(request):
        i = int(request.path_params["i"])
        if not 0 <= i < len(review.keys):
            return JSONResponse({"error": "no such suspect"}, 404)
        return JSONResponse(review.cards.card(i, review.decision(i)))

    @guard()
    async def image(request):
        split, index = request.path_params["split"], int(request.path_params["index"])
        size = request.query_params.get("size", "card")
        if split not in review.data.pools or size not in SIZES or review.data.kind != "image":
            return Response("not found", 404)
        try:
            body = review.cards.png(split, index, size)
        except KeyError:
            return Response("not found", 404)
        return Response(body, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})

    @guard()
    async def confusion(request):
        return JSONResponse(review.confusion())

    @guard(write=True)
    async def decide(request):
        body = await request.json()
        decision, label = body["decision"], body.get("label")
        if decision not in DECISIONS:
            return JSONResponse({"error": f"unknown decision {decision!r}"}, 400)
        if "ids" in body:
            ids = [int(i) for i in body["ids"]]
        else:  # a filter: every matching suspect without a standing decision
            ids = [int(i) for i in review.matching(body["filter"]) if review.decision(int(i)) is None]
        if any(not 0 <= i < len(review.keys) for i in ids):
            return JSONResponse({"error": "no such suspect"}, 400)
        if decision == "accept" and label is None and ids:
            groups: dict = {}
            for i in ids:  # each example gets its own suggestion; one batch per suggested class
                groups.setdefault(int(review.suggested[i]), []).append(i)
            for c, members in groups.items():
                review.decisions.decide([review.keys[i] for i in members], "accept", c)
        elif ids:
            label = None if decision not in WITH_LABEL else int(label)
            if label is not None and not 0 <= label < len(review.data.class_names):
                return JSONResponse({"error": "no such class"}, 400)
            review.decisions.decide([review.keys[i] for i in ids], decision, label)
        return JSONResponse({"decided": ids, "summary": review.summary()})

    @guard(write=True)
    async def undo(request):
        keys = review.decisions.undo()
        return JSONResponse({"undone": [review.row_of[k] for k in keys if k in review.row_of],
                             "summary": review.summary()})

    @guard(write=True)
    async def done(request):
        if on_done is not None:
            on_done()
        return JSONResponse({"done": True, "summary": review.summary()})

    routes = [Route("/", index), Route("/static/{name:str}", static), Route("/api/state", state),
              Route("/api/suspects", suspects), Route("/api/card/{i:int}", card),
              Route("/img/{split:str}/{index:int}.png", image), Route("/api/confusion", confusion),
              Route("/api/decide", decide, methods=["POST"]), Route("/api/undo", undo, methods=["POST"]),
              Route("/api/done", done, methods=["POST"])]

    async def not_found(request, exc):
        return Response("not found", getattr(exc, "status_code", 404), media_type="text/plain")

    app = Starlette(routes=routes, middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=list(hosts)),
                                               Middleware(_SecurityHeaders)],
                    exception_handlers={404: not_found, 405: not_found})
    app.state.token = token
    return app


class _SecurityHeaders:
    """Adds :data:`HEADERS` to every answer (keeping a Cache-Control the endpoint set)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                have = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k.lower().encode(), v.encode()) for k, v in HEADERS.items() if k.lower().encode() not in have]
                message = {**message, "headers": list(message.get("headers", [])) + extra}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
