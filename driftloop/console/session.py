"""The console's session: the API token in a cookie, and the CSRF token of its forms.

The login form puts the token in an HTTP-only, ``SameSite=Strict`` cookie (``Secure`` unless
``console_secure_cookie`` is off) scoped to the console's path. :class:`SessionMiddleware`, outside the API's
authentication, hands that cookie to it as the bearer token of console requests only (the JSON API never reads
the cookie), so the console is behind the same tokens and scopes: GET needs ``read``, a POST ``operate``. A
console request without the cookie, or whose token was revoked, is sent to the login form.

Every form carries a CSRF token: the form's purpose signed with the session's own token (itsdangerous, timed),
so another site can neither read nor forge one, and it lapses with the session.

>>> token = "dl_example"
>>> check_csrf(token, csrf_token(token), max_age_s=60)
True
>>> check_csrf("dl_other", csrf_token(token), max_age_s=60), check_csrf(token, "forged", max_age_s=60)
(False, False)
"""

from __future__ import annotations

from collections.abc import Iterable
from http.cookies import SimpleCookie

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.datastructures import URL
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Send
from starlette.types import Scope as AsgiScope

from driftloop.auth import route_path

PREFIX = "/console"
COOKIE = "driftloop_console"
LOGIN = f"{PREFIX}/login"
_CSRF_SALT = "driftloop.console.csrf"
_CSRF_PURPOSE = "console-form"


def csrf_token(token: str) -> str:
    """The CSRF token of the session holding ``token``."""
    return URLSafeTimedSerializer(token, salt=_CSRF_SALT).dumps(_CSRF_PURPOSE)


def check_csrf(token: str, candidate: str, max_age_s: float) -> bool:
    """Whether ``candidate`` is a CSRF token of the session holding ``token``, younger than ``max_age_s``."""
    try:
        return URLSafeTimedSerializer(token, salt=_CSRF_SALT).loads(candidate, max_age=max_age_s) == _CSRF_PURPOSE
    except BadSignature:
        return False


def session_token(scope: AsgiScope) -> str | None:
    """The API token in the request's console cookie, if any."""
    for key, value in scope["headers"]:
        if key == b"cookie":
            morsel = SimpleCookie(value.decode("latin-1")).get(COOKIE)
            if morsel and morsel.value:
                return morsel.value
    return None


def set_session(response: Response, token: str, root_path: str, max_age_s: int, secure: bool) -> None:
    """Log the browser in: the token in the console's cookie."""
    response.set_cookie(
        COOKIE,
        token,
        max_age=max_age_s,
        path=root_path + PREFIX,
        secure=secure,
        httponly=True,
        samesite="strict",
    )


def clear_session(response: Response, root_path: str, secure: bool) -> None:
    response.delete_cookie(COOKIE, path=root_path + PREFIX, secure=secure, httponly=True, samesite="strict")


def login_redirect(scope: AsgiScope, secure: bool, clear: bool = False) -> RedirectResponse:
    """To the login form, coming back to the page asked for (a GET) afterwards."""
    root = scope.get("root_path", "")
    target = URL(root + LOGIN)
    if scope["method"] == "GET":
        asked = route_path(scope) + (f"?{scope['query_string'].decode('latin-1')}" if scope["query_string"] else "")
        target = target.include_query_params(next=asked)
    response = RedirectResponse(str(target), status_code=303)
    if clear:
        clear_session(response, root, secure)
    return response


class SessionMiddleware:
    """Turns the console's cookie into the bearer token of console requests, outside ``AuthMiddleware``.

    Requests under ``/console`` but ``open_paths`` without the cookie, and those the token no longer opens (a
    401 from within), are redirected to the login form; other requests pass untouched.
    """

    def __init__(self, app: ASGIApp, open_paths: Iterable[str], secure: bool) -> None:
        self.app, self.open_paths, self.secure = app, frozenset(open_paths), secure

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        path = route_path(scope) if scope["type"] == "http" else ""
        if not (path == PREFIX or path.startswith(PREFIX + "/")) or path in self.open_paths:
            return await self.app(scope, receive, send)
        token = session_token(scope)
        if token is None:
            return await login_redirect(scope, self.secure)(scope, receive, send)
        scope.setdefault("state", {})  # shared with the middleware outside, which reads the principal from it
        headers = [(k, v) for k, v in scope["headers"] if k != b"authorization"]
        scope = {**scope, "headers": [*headers, (b"authorization", f"Bearer {token}".encode("latin-1"))]}
        refused = False

        async def send_or_redirect(message: Message) -> None:
            nonlocal refused
            if message["type"] == "http.response.start" and message["status"] == 401:
                refused = True
                await login_redirect(scope, self.secure, clear=True)(scope, receive, send)
            elif not refused:
                await send(message)

        await self.app(scope, receive, send_or_redirect)
