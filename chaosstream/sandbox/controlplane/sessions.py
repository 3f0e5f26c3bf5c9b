"""Session endpoints (``api/internal/api/handlers.go``; docs/streamspace.md#23-sessions)."""

import secrets
from typing import Any, Dict, Optional

from aiohttp import web

from chaosstream.sandbox.controlplane.db import Row, utcnow
from chaosstream.sandbox.controlplane.dispatcher import short_command_id
from chaosstream.sandbox.controlplane.models import session_json
from chaosstream.sandbox.controlplane.quota import quota_refusal
from chaosstream.sandbox.controlplane.selector import select_agent
from chaosstream.sandbox.controlplane.state import CP, json_error, read_json

DEFAULT_RESOURCES = {"memory": "2Gi", "cpu": "1000m"}


async def list_sessions(request: web.Request) -> web.Response:
    """``GET /api/v1/sessions[?user=]`` → ``{sessions, total}`` (all users without ``user``)."""
    db = request.app[CP].db
    user = request.query.get("user")
    if user:
        rows = await db.fetch(
            "SELECT * FROM sessions WHERE user_id = %s AND state <> 'deleted' ORDER BY created_at DESC",
            (user,),
        )
    else:
        rows = await db.fetch("SELECT * FROM sessions WHERE state <> 'deleted' ORDER BY created_at DESC")
    return web.json_response({"sessions": [session_json(r) for r in rows], "total": len(rows)})


async def _session(request: web.Request) -> Optional[Row]:
    return await request.app[CP].db.fetchrow(
        "SELECT * FROM sessions WHERE id = %s", (request.match_info["id"],)
    )


def _not_found(session_id: str) -> web.Response:
    return json_error(404, "Session not found", message=f"Session {session_id} does not exist")


async def get_session(request: web.Request) -> web.Response:
    """``GET /api/v1/sessions/:id`` → S / 404."""
    row = await _session(request)
    if row is None or row["state"] == "deleted":
        return _not_found(request.match_info["id"])
    return web.json_response(session_json(row))


def _optional_str(body: Dict[str, Any], key: str) -> str:
    value = body.get(key, "")
    if not isinstance(value, str):
        raise web.HTTPBadRequest(
            text=f'{{"error":"Validation failed","fields":{{"{key}":"must be a string"}}}}',
            content_type="application/json",
        )
    return value


async def create_session(request: web.Request) -> web.Response:
    """``POST /api/v1/sessions`` → 202; 400 / 404 template or user / 503 ``No agents available``."""
    cp = request.app[CP]
    body = await read_json(request)
    user = body.get("user")
    template = body.get("template")
    if not isinstance(user, str) or not user:
        return json_error(400, "Validation failed", fields={"user": "required"})
    if body.get("applicationId") and not template:
        return json_error(404, "Application not found", message="installed applications are not emulated")
    if not isinstance(template, str) or not template:
        return json_error(400, "Invalid request", message="either template or applicationId is required")
    resources = body.get("resources") or {}
    raw_tags = body.get("tags")
    tags = raw_tags or []
    if (
        not isinstance(resources, dict)
        or not isinstance(tags, list)
        or not all(isinstance(t, str) for t in tags)
    ):
        return json_error(400, "Validation failed", fields={"resources": "object", "tags": "list of strings"})
    persistent_home = body.get("persistentHome", True)
    if not isinstance(persistent_home, bool):
        return json_error(400, "Validation failed", fields={"persistentHome": "must be a boolean"})
    idle_timeout = _optional_str(body, "idleTimeout")
    max_duration = _optional_str(body, "maxSessionDuration")

    tpl = await cp.db.fetchrow(
        "SELECT * FROM catalog_templates WHERE name = %s ORDER BY id LIMIT 1", (template,)
    )
    if tpl is None:
        return json_error(404, "Template not found", message=f"Template {template} does not exist")
    defaults = ((tpl["manifest"] or {}).get("spec") or {}).get("defaultResources") or DEFAULT_RESOURCES
    memory = str(resources.get("memory") or defaults.get("memory") or DEFAULT_RESOURCES["memory"])
    cpu = str(resources.get("cpu") or defaults.get("cpu") or DEFAULT_RESOURCES["cpu"])
    if cp.config.profile.default_quota:
        # api/internal/api/handlers.go:727-777: usage from the user's rows, then the enforcer (403)
        known = await cp.db.fetchrow("SELECT 1 AS ok FROM users WHERE username = %s", (user,))
        usage = await cp.db.fetch("SELECT state, cpu, memory FROM sessions WHERE user_id = %s", (user,))
        refusal = quota_refusal(known is not None, cpu, memory, usage)
        if refusal is not None:
            return json_error(403, "Quota exceeded", message=refusal)
    user_row = await cp.db.fetchrow("SELECT id, org_id FROM users WHERE id = %s", (user,))
    if user_row is None:
        # the real API hits the sessions.user_id FK here; the sandbox answers readably instead
        return json_error(404, "User not found", message=f"User {user} does not exist (sessions.user_id FK)")

    agent_id = await select_agent(cp.db, cp.config)
    if agent_id is None:
        return json_error(
            503, "No agents available", message="No online agents are available to run the session"
        )

    session_id = f"{user}-{template}-{secrets.token_hex(4)}"
    now = utcnow()
    await cp.db.execute(
        "INSERT INTO sessions (id, user_id, template_name, state, app_type, namespace, platform, agent_id, memory,"
        " cpu, persistent_home, idle_timeout, max_session_duration, tags, org_id, created_at, updated_at)"
        " VALUES (%s, %s, %s, 'pending', %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::text[], %s, %s, %s)",
        (
            session_id, user, template, tpl["app_type"] or "desktop", cp.config.namespace, cp.config.platform,
            agent_id, memory, cpu, persistent_home, idle_timeout, max_duration, tags,
            user_row["org_id"] or "default-org", now, now,
        ),
    )  # fmt: skip
    payload = {
        "sessionId": session_id,
        "user": user,
        "template": template,
        "templateManifest": tpl["manifest"],
        "namespace": cp.config.namespace,
        "memory": memory,
        "cpu": cpu,
        "persistentHome": persistent_home,
        "idleTimeout": idle_timeout,
        "maxSessionDuration": max_duration,
        "tags": tags,
    }
    command = await cp.dispatcher.create(agent_id, "start_session", session_id, payload, short_command_id())
    await cp.dispatcher.dispatch(command)  # the 202 is returned whatever dispatch does
    return web.json_response(
        {
            "name": session_id,
            "namespace": cp.config.namespace,
            "user": user,
            "template": template,
            "state": "pending",
            "persistentHome": persistent_home,
            "idleTimeout": idle_timeout,
            "maxSessionDuration": max_duration,
            "resources": {"memory": memory, "cpu": cpu},
            "status": {
                "phase": "Pending",
                "message": f"Session provisioning in progress (agent: {agent_id}, command: {command['command_id']})",
            },
            # as built: Go's nil slice when the request had no tags (handlers.go CreateSession response)
            "tags": raw_tags if cp.config.profile.gin_wire else tags,
        },
        status=202,
    )


async def _transition(
    request: web.Request, action: str, new_state: str, allowed: Optional[tuple], verb: str, message: str
) -> web.Response:
    """Shared flow of DELETE / hibernate / wake: checks, new state, one command, 202."""
    cp = request.app[CP]
    session_id = request.match_info["id"]
    row = await _session(request)
    if row is None or row["state"] == "deleted":
        return _not_found(session_id)
    if allowed is None and row["state"] in ("terminating", "terminated"):
        if cp.config.profile.gin_wire:  # api/internal/api/handlers.go DeleteSession
            return json_error(
                409, "Session already terminating", message=f"Session is already in {row['state']} state"
            )
        return json_error(409, "Session is already being terminated", state=row["state"])
    if allowed is not None and row["state"] not in allowed:
        if cp.config.profile.gin_wire and action == "wake_session":  # api/internal/api/handlers.go:1350-1357
            return json_error(
                409,
                "Invalid session state",
                message=f"Session must be in 'hibernated' state to wake, currently: {row['state']}",
            )
        return json_error(
            409, f"Session cannot be {verb}", message=f"Session is {row['state']}", state=row["state"]
        )
    if not row["agent_id"]:
        return json_error(
            409, "Session has no agent assigned", message="Cannot dispatch a command without an agent"
        )
    await cp.db.execute(
        "UPDATE sessions SET state = %s, updated_at = %s WHERE id = %s", (new_state, utcnow(), session_id)
    )
    payload = {"sessionId": session_id, "namespace": row["namespace"] or cp.config.namespace}
    command = await cp.dispatcher.create(row["agent_id"], action, session_id, payload, short_command_id())
    await cp.dispatcher.dispatch(command)
    return web.json_response(
        {"name": session_id, "commandId": command["command_id"], "message": message}, status=202
    )


async def delete_session(request: web.Request) -> web.Response:
    """``DELETE /api/v1/sessions/:id`` → 202 ``{name, commandId, message}`` / 404 / 409."""
    return await _transition(
        request, "stop_session", "terminating", None, "terminated", "Session termination requested"
    )


async def hibernate_session(request: web.Request) -> web.Response:
    """``PUT /api/v1/sessions/:id/hibernate`` → 202 / 404 / 409 unless running."""
    return await _transition(
        request,
        "hibernate_session",
        "hibernating",
        ("running",),
        "hibernated",
        "Session hibernation requested",
    )


async def wake_session(request: web.Request) -> web.Response:
    """``PUT /api/v1/sessions/:id/wake`` → 202 / 404 / 409 unless hibernated."""
    return await _transition(
        request, "wake_session", "waking", ("hibernated",), "woken", "Session wake requested"
    )
