"""Shared objects of one control-plane instance, reachable from every handler via ``app[CP]``."""

import dataclasses
from typing import TYPE_CHECKING

from aiohttp import web

from chaosstream.sandbox.controlplane.config import ControlPlaneConfig
from chaosstream.sandbox.controlplane.db import Database

if TYPE_CHECKING:
    from chaosstream.sandbox.controlplane.dispatcher import Dispatcher
    from chaosstream.sandbox.controlplane.hub import AgentHub


@dataclasses.dataclass
class ControlPlane:
    config: ControlPlaneConfig
    db: Database
    hub: "AgentHub"
    dispatcher: "Dispatcher"


CP: web.AppKey[ControlPlane] = web.AppKey("controlplane", ControlPlane)


def json_error(code: int, error: str, /, **extra: object) -> web.Response:
    """StreamSpace's error shape: ``{"error": ..., "message"|"details": ...}`` with HTTP status ``code``."""
    return web.json_response({"error": error, **extra}, status=code)


async def read_json(request: web.Request) -> dict:
    """The request body as a JSON object, or a 400 ``Invalid request`` HTTP error."""
    try:
        body = await request.json()
    except ValueError as exc:
        raise web.HTTPBadRequest(
            text=f'{{"error":"Invalid request","details":"{type(exc).__name__}: malformed JSON"}}',
            content_type="application/json",
        ) from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(
            text='{"error":"Invalid request","details":"body must be a JSON object"}',
            content_type="application/json",
        )
    return body
