"""The web interface for newsrooms and fact-checkers, and the report and list endpoints it uses.

Pages live under `/ui/`, our static files under `/static/`; `/v1/verifications` (GET, a client's
own recent verifications) and `/v1/verifications/{id}/report` (the HTML report) serve pages and
API clients alike. `install(app)` adds the router and the `CookieSession` middleware (see
`provenance.api.web` for the session design): browsers are authenticated by their session cookie,
everything else by its bearer key.
"""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, File, Form, Query, Request, Response, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse
from markupsafe import escape
from starlette.concurrency import run_in_threadpool

from provenance import web_sessions
from provenance.api.deps import ServiceDep, VerifierDep, service_of
from provenance.api.routes import verifications
from provenance.api.web import (
    SESSION_COOKIE,
    SESSION_MAX_AGE,
    STATIC_TYPES,
    WEB_SCOPES,
    CookieSession,
    same_origin,
    security_headers,
    static_files,
    templates,
    valid_key_text,
)
from provenance.core.errors import AuthError, Conflict, DomainError, Forbidden, NotFound
from provenance.models import ApiClient, Verification
from provenance.reports import NAV_MARKER, report_csp
from provenance.verification import ReportState, Verifier, summary

router = APIRouter()

RECENT_ON_HOME = 20
_STATIC = static_files()


def install(app: FastAPI) -> None:
    """Add the web router and the session middleware to `app`; what it already has is not added again."""
    # FastAPI keeps an included router as one route (`original_router`); older versions copy its routes.
    if not any(
        getattr(route, "original_router", None) is router or getattr(route, "endpoint", None) is home
        for route in app.routes
    ):
        app.include_router(router)
    # Unpacked as Starlette itself builds the stack: `Middleware.cls` is typed as a ParamSpec
    # protocol that mypy does not see overlap with a class, though the identity check is sound.
    if not any(cls is CookieSession for cls, _args, _kwargs in app.user_middleware):
        app.add_middleware(CookieSession)


# --- helpers ---


def current_client(request: Request) -> ApiClient | None:
    """The client of the request's bearer key (the session's token, for pages), or None."""
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not valid_key_text(key) or not web_sessions.vouched(request.scope, key):
        return None
    client: ApiClient | None = service_of(request).clients.authenticate(key)
    return client


def _web_client(request: Request) -> ApiClient | None:
    client = current_client(request)
    return client if client is not None and client.scope in WEB_SCOPES else None


def wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def page(name: str, client: ApiClient | None, status_code: int = 200, **context: Any) -> HTMLResponse:
    html = templates.get_template(name).render(client=client, **context)
    return HTMLResponse(html, status_code=status_code, headers=security_headers())


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers=security_headers())


def safe_next(url: str | None) -> str:
    """Only our own paths: a sign-in link must not send anyone to another site."""
    if not url or not url.startswith("/") or url.startswith("//") or "\\" in url:
        return "/ui/"
    return url


def _sign_in_redirect(request: Request) -> RedirectResponse:
    return redirect(f"/ui/sign-in?next={quote(request.url.path)}")


def _message(
    client: ApiClient | None, title: str, lines: list[str], status_code: int = 200, **context: Any
) -> HTMLResponse:
    return page("message.html", client, status_code, title=title, lines=lines, **context)


# --- API: the client's history and the report ---


@router.get("/v1/verifications", tags=["verifications"])
def list_verifications(
    service: ServiceDep,
    client: VerifierDep,
    limit: Annotated[int, Query(ge=1, le=100, description="how many, newest first")] = 20,
) -> dict[str, Any]:
    """The calling client's own verifications, newest first."""
    return {"items": service.verifier.recent(client.id, limit), "limit": limit}


def _nav(verification_id: str) -> str:
    vid = escape(verification_id)
    return (
        '<nav class="site-nav" aria-label="Site">'
        '<a href="/ui/">All verifications</a>'
        f'<a href="/v1/verifications/{vid}/report?download=1">Download this report</a>'
        f'<a href="/v1/verifications/{vid}">Result as JSON</a>'
        "</nav>"
    )


_NO_REPORT: dict[str, DomainError] = {
    "verification_pending": Conflict("verification_pending", "the verification is not done; ask again later"),
    "verification_failed": Conflict("verification_failed", "the verification failed, so there is no report"),
    "report_pending": Conflict("report_pending", "the report is being drawn; ask again in a moment"),
    "report_unavailable": NotFound(
        "report_unavailable", "the report could not be drawn; the result itself is complete"
    ),
}


def _no_report_page(client: ApiClient, verification: Verification, state: ReportState) -> HTMLResponse:
    """The same states for people: progress that follows itself, or what went wrong."""
    report_url = f"/v1/verifications/{verification.id}/report"
    if state == "verification_pending":
        return _message(
            client,
            "Verification in progress",
            [f"{verification.filename} is being verified. This page opens the report when it is ready."],
            poll_url=f"/v1/verifications/{verification.id}",
            report_url=report_url,
            status=verification.status,
            links=[(report_url, "Check again")],
        )
    if state == "verification_failed":
        error = json.loads(verification.error) if verification.error else {}
        return _message(
            client,
            "Verification failed",
            [f"{verification.filename}: {error.get('code', 'failed')}: {error.get('detail', '')}"],
            links=[("/ui/", "Verify another clip")],
        )
    if state == "report_pending":
        return _message(
            client,
            "Preparing the report",
            [f"{verification.filename} is verified; its report is being drawn. This page reloads shortly."],
            reload_ms=2000,
            links=[(report_url, "Check again")],
        )
    item = summary(verification)
    confidence = item["confidence"]
    if item["verdict"] == "unknown":
        verdict = "Verdict: unknown (no registered original matches this clip)."
    else:
        percent = ">99" if confidence and 0.995 <= confidence < 1 else f"{round((confidence or 0) * 100)}"
        verdict = f"Verdict: {item['verdict']}" + (f", confidence {percent} %." if confidence else ".")
    return _message(
        client,
        "Report unavailable",
        [verdict, "The report for this verification could not be drawn; the result itself is complete."],
        links=[
            (f"/v1/verifications/{verification.id}", "The result as JSON"),
            ("/ui/", "Your verifications"),
        ],
    )


@router.get(
    "/v1/verifications/{verification_id}/report",
    tags=["verifications"],
    response_class=HTMLResponse,
    responses={200: {"content": {"text/html": {}}, "description": "the self-contained HTML report"}},
)
def verification_report(
    verification_id: str,
    request: Request,
    download: Annotated[bool, Query(description="as an attachment, without the site's navigation")] = False,
) -> Response:
    """The match report (HTML). Newsroom and fact-checker clients see their own verifications only.

    Without a report yet, browsers (Accept: text/html) get a page that follows the verification;
    API clients get 409 `verification_pending`, `verification_failed` or `report_pending` (ask
    again), or 404 `report_unavailable` when drawing it failed.
    """
    client = current_client(request)
    html_wanted = wants_html(request)
    verifier = service_of(request).verifier
    if client is None:
        if html_wanted:
            return _sign_in_redirect(request)
        if "authorization" not in request.headers:
            raise AuthError("api_key_missing", "send an API key as 'Authorization: Bearer KEY'")
        raise AuthError("api_key_invalid", "the API key is unknown or revoked")
    try:
        if client.scope not in WEB_SCOPES:
            raise Forbidden("scope_forbidden", f"this needs one of the scopes {sorted(WEB_SCOPES)}")
        verification = verifier.get(verification_id, None if client.scope == "admin" else client.id)
    except DomainError as exc:
        if not html_wanted:
            raise
        return _message(
            client, "Not available", [exc.detail], exc.status, links=[("/ui/", "Your verifications")]
        )
    state, path = verifier.report(verification)
    if path is None:
        if not html_wanted:  # API clients get a problem they can act on, never a status page
            raise _NO_REPORT[state]
        return _no_report_page(client, verification, state)
    html = path.read_text(encoding="utf-8")
    headers = security_headers(report_csp(html))
    if download:
        headers["Content-Disposition"] = f'attachment; filename="report-{verification.id}.html"'
    html = html.replace(NAV_MARKER, "" if download else _nav(verification.id), 1)
    return HTMLResponse(html, headers=headers)


# --- pages ---


@router.get("/", include_in_schema=False)
def root() -> RedirectResponse:
    """People who open the server's address want the interface, not a 404."""
    return redirect("/ui/")


@router.get("/ui", include_in_schema=False)
def ui_root() -> RedirectResponse:
    """One canonical address per page."""
    return redirect("/ui/")


@router.get("/ui/", include_in_schema=False, response_class=HTMLResponse)
def home(request: Request, service: ServiceDep) -> Response:
    """Upload a clip, and the signed-in client's recent verifications."""
    client = _web_client(request)
    if client is None:
        return _sign_in_redirect(request)
    return _home(client, service.verifier, service.settings.limits.max_upload_bytes)


def _home(
    client: ApiClient,
    verifier: Verifier,
    max_upload_bytes: int,
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    items = verifier.recent(client.id, RECENT_ON_HOME)
    return page(
        "home.html",
        client,
        status_code,
        active="home",
        recent=items,
        error=error,
        max_mb=max_upload_bytes // (1024 * 1024),
    )


@router.get("/ui/sign-in", include_in_schema=False, response_class=HTMLResponse)
def sign_in_form(request: Request, next_url: Annotated[str | None, Query(alias="next")] = None) -> Response:
    """The form to paste a key into; someone already signed in goes straight on."""
    if _web_client(request) is not None:
        return redirect(safe_next(next_url))
    return page("sign_in.html", None, next=safe_next(next_url))


@router.post("/ui/sign-in", include_in_schema=False, response_class=HTMLResponse)
def sign_in(
    request: Request,
    api_key: Annotated[str, Form()] = "",
    next_url: Annotated[str, Form(alias="next")] = "/ui/",
) -> Response:
    """Check the pasted key and open a server-side session; the cookie holds its token, never
    the key (see `provenance.api.web`)."""
    target = safe_next(next_url)
    if not same_origin(request.scope["headers"], request.url.scheme):
        return page("sign_in.html", None, 403, next=target, error="Sign in from this site's own page.")
    key = api_key.strip()
    client = service_of(request).clients.authenticate(key) if valid_key_text(key) else None
    if client is None:
        return page(
            "sign_in.html", None, 401, next=target, error="This API key is unknown or has been revoked."
        )
    if client.scope not in WEB_SCOPES:
        return page(
            "sign_in.html",
            None,
            403,
            next=target,
            error=f"A {client.scope} key cannot use this site: it needs a newsroom or fact-checker key.",
        )
    token = web_sessions.create(service_of(request).engine, client, key, SESSION_MAX_AGE)
    response = redirect(target)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=SESSION_MAX_AGE,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/ui/sign-out", include_in_schema=False)
def sign_out(request: Request) -> Response:
    """End the session on the server, in every process, and drop the cookie (a cross-site form
    cannot sign anyone out)."""
    if not same_origin(request.scope["headers"], request.url.scheme):
        return _message(None, "Not signed out", ["Sign out from this site's own page."], 403)
    token = request.cookies.get(SESSION_COOKIE)
    if token and valid_key_text(token):
        web_sessions.revoke(service_of(request).engine, token)
    response = redirect("/ui/sign-in")
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="strict", secure=request.url.scheme == "https"
    )
    return response


@router.post("/ui/verifications", include_in_schema=False)
async def upload(
    request: Request,
    response: Response,
    media: Annotated[UploadFile, File()],
) -> Response:
    """The upload form without JavaScript: verify, then go to the report (or its progress).

    Asynchronous so the verification runs on the verifier's bounded threads, as through the API."""
    service = service_of(request)
    client = await run_in_threadpool(_web_client, request)
    if client is None:
        return _sign_in_redirect(request)
    try:
        body = await verifications.create_verification(request, response, client, media)
    except DomainError as exc:
        detail = f"{exc.code}: {exc.detail}"
        return await run_in_threadpool(
            _home, client, service.verifier, service.settings.limits.max_upload_bytes, detail, exc.status
        )
    return redirect(f"/v1/verifications/{body['id']}/report")


@router.get("/ui/operators", include_in_schema=False, response_class=HTMLResponse)
def operators(request: Request) -> Response:
    """The operators' page: the continuous-evaluation status, its plot and the recent runs."""
    client = _web_client(request)
    if client is None:
        return _sign_in_redirect(request)
    if client.scope != "admin":
        return _message(
            client, "Operators only", ["This page is for the service's operators (admin keys)."], 403
        )
    evaluator = service_of(request).evaluator
    return page(
        "operators.html", client, active="operators", status=evaluator.status(), runs=evaluator.history(20)
    )


@router.get("/static/{name}", include_in_schema=False)
def static(name: str) -> Response:
    """Our own CSS and JS, by exact name only: nothing else under the package is reachable."""
    path = _STATIC.get(name)
    if path is None:
        raise NotFound("static_not_found", f"no static file {name}")
    return Response(
        path.read_bytes(),
        media_type=STATIC_TYPES[path.suffix],
        headers={
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-cache",
            "Cross-Origin-Resource-Policy": "same-origin",
        },
    )
