"""User authentication: login, HS256 JWTs (issuer ``streamspace-api``, 24 h) and role checks.

As ``api/internal/auth/handlers.go`` and ``api/cmd/main.go``; see docs/streamspace.md#22-authentication.
"""

import base64
import datetime as dt
import hashlib
import hmac
import json
import time
from typing import Any, Awaitable, Callable, Dict, Optional

from aiohttp import web

from chaosstream.sandbox.controlplane.db import rfc3339, utcnow
from chaosstream.sandbox.controlplane.state import CP, json_error, read_json
from chaosstream.sandbox.schema import hash_password, verify_password

ISSUER = "streamspace-api"
TOKEN_LIFETIME = dt.timedelta(hours=24)
USER_KEY: web.RequestKey[Dict[str, Any]] = web.RequestKey("user", dict)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode_jwt(claims: Dict[str, Any], secret: str) -> str:
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    body = _b64(json.dumps(claims, separators=(",", ":")).encode())
    signature = hmac.new(secret.encode(), f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{_b64(signature)}"


def decode_jwt(token: str, secret: str) -> Dict[str, Any]:
    """Verified claims of ``token``; raises ``ValueError`` with the reason otherwise."""
    try:
        header_b64, body_b64, sig_b64 = token.split(".")
        header = json.loads(_unb64(header_b64))
        claims = json.loads(_unb64(body_b64))
        signature = _unb64(sig_b64)
    except (ValueError, TypeError) as exc:
        raise ValueError("malformed token") from exc
    if header.get("alg") != "HS256":
        raise ValueError("unexpected signing method")
    expected = hmac.new(secret.encode(), f"{header_b64}.{body_b64}".encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(signature, expected):
        raise ValueError("signature is invalid")
    if claims.get("iss") != ISSUER:
        raise ValueError("invalid issuer")
    if float(claims.get("exp", 0)) < time.time():
        raise ValueError("token is expired")
    return claims


def issue_token(user: Dict[str, Any], secret: str) -> tuple[str, dt.datetime]:
    now = utcnow()
    expires = now + TOKEN_LIFETIME
    epoch = dt.datetime(1970, 1, 1)
    claims = {
        "user_id": user["id"],
        "username": user["username"],
        "email": user["email"],
        "role": user["role"],
        "iss": ISSUER,
        "sub": user["id"],
        "iat": int((now - epoch).total_seconds()),
        "nbf": int((now - epoch).total_seconds()),
        "exp": int((expires - epoch).total_seconds()),
    }
    return encode_jwt(claims, secret), expires


def user_json(row: Dict[str, Any]) -> Dict[str, Any]:
    return {
        "id": row["id"],
        "username": row["username"],
        "email": row["email"],
        "fullName": row.get("full_name") or "",
        "role": row["role"],
        "provider": row.get("provider") or "local",
        "active": bool(row["active"]),
        "orgId": row.get("org_id") or "",
        "createdAt": rfc3339(row.get("created_at")),
        "updatedAt": rfc3339(row.get("updated_at")),
        "lastLogin": rfc3339(row.get("last_login")),
    }


async def login(request: web.Request) -> web.Response:
    """``POST /api/v1/auth/login`` → ``{token, expiresAt, user}`` / 401 / 403."""
    cp = request.app[CP]
    body = await read_json(request)
    username, password = body.get("username"), body.get("password")
    if not isinstance(username, str) or not isinstance(password, str) or not username or not password:
        if cp.config.profile.gin_wire:  # ShouldBindJSON with binding:"required" (auth/handlers.go:236-241)
            return json_error(400, "Invalid request body")
        return json_error(400, "Validation failed", fields={"username": "required", "password": "required"})
    user = await cp.db.fetchrow("SELECT * FROM users WHERE username = %s", (username,))
    if user is None or not verify_password(password, user["password_hash"]):
        return json_error(401, "Invalid credentials")
    if not user["active"]:
        return json_error(403, "Account disabled", message="This account has been disabled")
    await cp.db.execute("UPDATE users SET last_login = %s WHERE id = %s", (utcnow(), user["id"]))
    token, expires = issue_token(user, cp.config.jwt_secret)
    return web.json_response({"token": token, "expiresAt": rfc3339(expires), "user": user_json(user)})


async def ensure_admin_password(request_app: web.Application) -> None:
    """First start: give the seeded ``admin`` user the configured password (real: ``ADMIN_PASSWORD``)."""
    cp = request_app[CP]
    await cp.db.execute(
        "UPDATE users SET password_hash = %s, username = %s WHERE id = 'admin' AND password_hash IS NULL",
        (hash_password(cp.config.admin_password), cp.config.admin_username),
    )


def _bearer(request: web.Request) -> Optional[str]:
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header[len("Bearer ") :].strip()
    return None


def require_user(handler: Handler, role: Optional[str] = None) -> Handler:
    """Wrap ``handler`` with JWT authentication (401) and, if given, a role check (403)."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        token = _bearer(request)
        if token is None:
            if "Authorization" in request.headers:
                return json_error(401, "Invalid authorization header format", message="Use: Bearer <token>")
            return json_error(401, "Authorization header required")
        try:
            claims = decode_jwt(token, request.app[CP].config.jwt_secret)
        except ValueError as exc:
            return json_error(401, "Invalid token", message=str(exc))
        if role is not None and claims.get("role") != role:
            return json_error(
                403, "Insufficient permissions", message=f"This endpoint requires role '{role}'"
            )
        request[USER_KEY] = claims
        return await handler(request)

    wrapped.__name__ = getattr(handler, "__name__", "handler")
    wrapped.__doc__ = handler.__doc__
    return wrapped
