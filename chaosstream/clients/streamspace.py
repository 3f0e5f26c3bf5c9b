"""HTTP client of the StreamSpace API (routes in `api/cmd/main.go`, handlers in `api/internal/handlers/`): login, sessions, admin agents, health.

Every failure becomes one readable `ActivityFailed` sentence that names what to fix; tokens and
passwords never appear in it.
"""

import hashlib
import os
import ssl
import threading
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import httpx
from chaoslib.exceptions import ActivityFailed

from chaosstream.settings import Settings, redact

__all__ = ["StreamSpaceAPI", "api_client", "APIError"]


class APIError(ActivityFailed):
    """The StreamSpace API answered with an unexpected status code."""

    def __init__(self, message: str, status_code: int = 0, body: Any = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body = body


# Tokens are cached per (API, user, password digest) so that a wait-probe polling every 500 ms does not
# log in 100 times. A 401 on a cached token drops it and logs in once more (the API may have restarted).
_TOKENS: Dict[Tuple[str, str, str], str] = {}
_TOKENS_LOCK = threading.Lock()


# Building an SSL context loads the whole CA bundle (~30 ms): httpx does it for every new Client, even for
# plain http URLs. Probes make one client per call, so the context is built once per CA source and reused.
_SSL_CONTEXTS: Dict[Tuple[Any, ...], ssl.SSLContext] = {}


def _verify(settings: Settings) -> Any:
    verify = settings.verify
    if verify is False:
        return False
    if verify is True:
        key: Tuple[Any, ...] = (True, os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
    else:
        try:
            key = (str(verify), os.path.getmtime(verify))
        except OSError:
            raise ActivityFailed(
                f"The CA bundle {verify!r} ('streamspace_ca_cert') cannot be read: check the path."
            ) from None
    with _TOKENS_LOCK:
        context = _SSL_CONTEXTS.get(key)
    if context is None:
        try:
            context = (
                httpx.create_ssl_context() if verify is True else ssl.create_default_context(cafile=verify)
            )
        except (ssl.SSLError, OSError, ValueError):
            raise ActivityFailed(
                f"The CA bundle {verify!r} ('streamspace_ca_cert') holds no PEM certificate: point it at the "
                "CA that signed the API's certificate."
            ) from None
        with _TOKENS_LOCK:
            _SSL_CONTEXTS[key] = context
    return context


def _token_key(settings: Settings) -> Tuple[str, str, str]:
    digest = hashlib.sha256((settings.password or "").encode()).hexdigest()
    return (settings.api_url, settings.username or "", digest)


def _error_text(response: httpx.Response, settings: Settings) -> str:
    """What an error answer says, on one line, with every secret we hold (and sent) scrubbed out: an error
    page may echo the request, token or password included."""
    try:
        body = response.json()
    except ValueError:
        text = " ".join(response.text[:200].split())
    else:
        if isinstance(body, dict):
            text = ": ".join(str(body.get(k)) for k in ("error", "message", "details") if body.get(k))
        else:
            text = str(body)[:200]
    return redact(" ".join(text.split())[:200], settings)


def _json(response: httpx.Response, what: str, settings: Settings) -> Any:
    """The JSON body of a 2xx answer, or one sentence saying the server is not the StreamSpace API."""
    try:
        return response.json()
    except ValueError:
        raise ActivityFailed(
            f"{what} answered {response.status_code} with something that is not JSON: check that "
            f"'streamspace_api_url' ({redact(settings.api_url)}) is the StreamSpace API, not a proxy or UI page."
        ) from None


def _objects(items: Any, what: str) -> List[Dict[str, Any]]:
    """A list of JSON objects, or one sentence: a list holding nulls or numbers is not StreamSpace's."""
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise ActivityFailed(f"{what} did not return a list of objects: is this StreamSpace v2?")
    return items


class StreamSpaceAPI:
    """A short-lived API session; use as a context manager (one per activity call)."""

    def __init__(self, settings: Settings, timeout: Optional[float] = None) -> None:
        self.settings = settings
        self._client = httpx.Client(
            base_url=settings.api_url,
            timeout=timeout if timeout is not None else settings.http_timeout,
            verify=_verify(settings),
            headers={"Accept": "application/json", "User-Agent": "chaostoolkit-streamspace"},
        )
        self.requests_made = 0

    def __enter__(self) -> "StreamSpaceAPI":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    # -- transport -------------------------------------------------------------------------------------
    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        url = self.settings.api_url
        try:
            self.requests_made += 1
            return self._client.request(method, path, **kwargs)
        except httpx.ConnectError as exc:
            raise ActivityFailed(
                f"Cannot reach the StreamSpace API at {redact(url)} ({redact(exc, self.settings)}): check "
                "'streamspace_api_url' (STREAMSPACE_API_URL) and that the API is running."
            ) from None
        except httpx.TimeoutException:
            raise ActivityFailed(
                f"The StreamSpace API at {redact(url)} did not answer {method} {path} within "
                f"{self._client.timeout.read}s: check the API's health or raise 'streamspace_http_timeout'."
            ) from None
        except httpx.HTTPError as exc:
            raise ActivityFailed(
                f"HTTP error talking to the StreamSpace API at {redact(url)}: {redact(exc, self.settings)}."
            ) from None

    def login(self) -> str:
        """Exchange username/password for a JWT (`POST /api/v1/auth/login` → `token`)."""
        s = self.settings
        if not s.username or not s.password:
            raise ActivityFailed(
                "No StreamSpace credentials: set 'token', or 'username' and 'password', in the 'streamspace' "
                'secrets scope (and list "secrets": ["streamspace"] on the activity), or STREAMSPACE_TOKEN / '
                "STREAMSPACE_USERNAME / STREAMSPACE_PASSWORD."
            )
        response = self._send(
            "POST", "/api/v1/auth/login", json={"username": s.username, "password": s.password}
        )
        if response.status_code == 401:
            raise ActivityFailed(
                f"The StreamSpace API rejected the login of user {s.username!r} (401 Invalid credentials): "
                "check the 'username'/'password' secrets (STREAMSPACE_USERNAME/STREAMSPACE_PASSWORD)."
            )
        if response.status_code == 403:
            raise ActivityFailed(
                f"The StreamSpace user {s.username!r} is disabled (403): use an active admin user."
            )
        if response.status_code != 200:
            # Never quote a login answer: error pages may echo the request body, password included.
            raise APIError(
                f"Login to the StreamSpace API failed with HTTP {response.status_code}: check "
                "'streamspace_api_url' and that the API's auth endpoint is up.",
                response.status_code,
            )
        try:
            token = response.json()["token"]
            if not isinstance(token, str) or not token:
                raise TypeError
        except (ValueError, KeyError, TypeError):
            raise ActivityFailed(
                f"The login at {redact(s.api_url)}/api/v1/auth/login answered 200 without a 'token': is "
                "'streamspace_api_url' really a StreamSpace API?"
            ) from None
        with _TOKENS_LOCK:
            _TOKENS[_token_key(s)] = token
        return token

    def _token(self) -> str:
        if self.settings.token:
            return self.settings.token
        with _TOKENS_LOCK:
            cached = _TOKENS.get(_token_key(self.settings))
        return cached or self.login()

    def call(
        self,
        method: str,
        path: str,
        expected: Sequence[int] = (200,),
        json: Any = None,
        params: Optional[Dict[str, str]] = None,
    ) -> httpx.Response:
        """An authenticated request; returns the response when its status is in `expected`."""
        response = self._send(method, path, json=json, params=params, headers=self._auth_header())
        if response.status_code == 401 and not self.settings.token:
            with _TOKENS_LOCK:
                _TOKENS.pop(_token_key(self.settings), None)
            self.login()
            response = self._send(method, path, json=json, params=params, headers=self._auth_header())
        if response.status_code in expected:
            return response
        if response.status_code == 401:
            raise ActivityFailed(
                "The StreamSpace API rejected the token (401): the 'token' secret (STREAMSPACE_TOKEN) is invalid "
                "or expired; give a fresh one or use username/password."
            )
        if response.status_code == 403:
            body = _safe_json(response)
            if isinstance(body, dict) and body.get("error") == "Quota exceeded":
                # api/internal/api/handlers.go:727-777: every user has the default quota (4000m in total)
                raise ActivityFailed(
                    f"StreamSpace refused {method} {path} (403 Quota exceeded: {body.get('message', '')}): "
                    "spread the sessions over more users (session_users) or make them smaller."
                )
            raise ActivityFailed(
                f"The StreamSpace API refused {method} {path} (403): the user needs the admin role."
            )
        raise APIError(
            f"StreamSpace API {method} {path} answered HTTP {response.status_code}: "
            f"{_error_text(response, self.settings)}.",
            response.status_code,
            _safe_json(response),
        )

    def object_of(self, response: httpx.Response, what: str) -> Dict[str, Any]:
        """The JSON object a response carries ({} for an empty body), or one sentence if it is not one."""
        if not response.content:
            return {}
        return _objects([_json(response, what, self.settings)], what)[0]

    def _auth_header(self) -> Dict[str, str]:
        return {"Authorization": f"Bearer {self._token()}"}

    # -- endpoints -------------------------------------------------------------------------------------
    def health(self) -> Tuple[int, Any, float]:
        """`GET /health` without auth: (status code, body, latency in ms)."""
        started = time.monotonic()
        response = self._send("GET", "/health")
        return response.status_code, _safe_json(response), (time.monotonic() - started) * 1000.0

    def list_agents(
        self, status: Optional[str] = None, platform: Optional[str] = None
    ) -> List[Dict[str, Any]]:
        params = {k: v for k, v in (("status", status), ("platform", platform)) if v}
        what = "GET /api/v1/admin/agents"
        body = _json(self.call("GET", "/api/v1/admin/agents", params=params or None), what, self.settings)
        agents = body.get("agents") if isinstance(body, dict) else None
        if not isinstance(agents, list):
            raise ActivityFailed(f'{what} did not return {{"agents": [...]}}: is this StreamSpace v2?')
        return _objects(agents, what)

    def get_agent(self, agent_id: str) -> Optional[Dict[str, Any]]:
        response = self.call("GET", f"/api/v1/admin/agents/{_quote(agent_id)}", expected=(200, 404))
        if response.status_code == 404:
            return None
        return _objects(
            [_json(response, "GET /api/v1/admin/agents/:id", self.settings)], "GET /api/v1/admin/agents/:id"
        )[0]

    def list_sessions(self, user: Optional[str] = None) -> List[Dict[str, Any]]:
        what = "GET /api/v1/sessions"
        body = _json(
            self.call("GET", "/api/v1/sessions", params={"user": user} if user else None), what, self.settings
        )
        sessions = body.get("sessions") if isinstance(body, dict) else None
        if not isinstance(sessions, list):
            raise ActivityFailed(f'{what} did not return {{"sessions": [...]}}.')
        return _objects(sessions, what)

    def get_session(self, name: str) -> Optional[Dict[str, Any]]:
        response = self.call("GET", f"/api/v1/sessions/{_quote(name)}", expected=(200, 404))
        if response.status_code == 404:
            return None
        return _objects(
            [_json(response, "GET /api/v1/sessions/:id", self.settings)], "GET /api/v1/sessions/:id"
        )[0]

    def create_session(self, body: Dict[str, Any]) -> httpx.Response:
        return self.call("POST", "/api/v1/sessions", expected=(202, 503), json=body)

    def session_command(self, method: str, name: str, suffix: str = "") -> httpx.Response:
        return self.call(method, f"/api/v1/sessions/{_quote(name)}{suffix}", expected=(202, 404, 409))


def _quote(value: str) -> str:
    from urllib.parse import quote

    return quote(str(value), safe="")


def _safe_json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text[:500]


def api_client(settings: Settings, timeout: Optional[float] = None) -> StreamSpaceAPI:
    """A new API session for one activity call."""
    return StreamSpaceAPI(settings, timeout=timeout)
