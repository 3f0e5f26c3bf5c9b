"""Agent endpoints (``api/internal/handlers/agents.go``): admin management and agent self-service.

Admin routes need an admin JWT, agent routes the agent's API key; see
docs/streamspace.md#24-agent-administration and docs/streamspace.md#25-agent-self-service.
"""

import hmac
import re
import secrets
from typing import Optional

import psycopg
from aiohttp import web

from chaosstream.sandbox.controlplane.auth import USER_KEY
from chaosstream.sandbox.controlplane.db import Jsonb, rfc3339, utcnow
from chaosstream.sandbox.controlplane.dispatcher import ACTIONS, long_command_id
from chaosstream.sandbox.controlplane.models import agent_json, command_json
from chaosstream.sandbox.controlplane.state import CP, json_error, read_json
from chaosstream.sandbox.schema import hash_password, verify_password

PLATFORMS = ("kubernetes", "docker", "vm", "cloud")
API_KEY_HEADER = "X-Agent-API-Key"
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


# --- agent authentication (api/internal/middleware/agent_auth.go) ---------------------------------


async def check_agent_key(request: web.Request, agent_id: Optional[str]) -> Optional[web.Response]:
    """None when the request may proceed, else the error response (401 / 404 / 403)."""
    cp = request.app[CP]
    key = request.headers.get(API_KEY_HEADER, "")
    if not key:
        return json_error(401, "Missing API key", message=f"{API_KEY_HEADER} header is required")
    if not _HEX64.match(key):
        return json_error(401, "Invalid API key format", message="API key must be 64 hexadecimal characters")
    if not agent_id:
        return None  # the handler answers 400
    bootstrap = hmac.compare_digest(key, cp.config.bootstrap_key)
    row = await cp.db.fetchrow("SELECT api_key_hash FROM agents WHERE agent_id = %s", (agent_id,))
    if row is None:
        return None if bootstrap else json_error(404, "Agent not found", agentId=agent_id)
    if bootstrap:
        return None  # also accepted for known agents, with or without a key of their own
    if not row["api_key_hash"]:
        return json_error(403, "No API key configured", message="Agent has no API key", agentId=agent_id)
    if not verify_password(key, row["api_key_hash"]):
        return json_error(403, "Invalid API key", agentId=agent_id)
    await cp.db.execute(
        "UPDATE agents SET api_key_last_used_at = %s WHERE agent_id = %s", (utcnow(), agent_id)
    )
    return None


# --- agent self-service -------------------------------------------------------------------------


def _validate_registration(body: dict) -> dict:
    fields = {}
    agent_id, platform, region = body.get("agentId"), body.get("platform"), body.get("region")
    if not isinstance(agent_id, str) or not 3 <= len(agent_id) <= 100:
        fields["agentId"] = "required, 3 to 100 characters"
    if platform not in PLATFORMS:
        fields["platform"] = f"required, one of {' '.join(PLATFORMS)}"
    if region not in (None, "") and (not isinstance(region, str) or not 2 <= len(region) <= 50):
        fields["region"] = "2 to 50 characters"
    for key in ("capacity", "metadata"):
        if body.get(key) is not None and not isinstance(body[key], dict):
            fields[key] = "must be an object"
    return fields


async def register_agent(request: web.Request) -> web.Response:
    """``POST /api/v1/agents/register``: 202 pending / 200 approved / 403 rejected."""
    cp = request.app[CP]
    body = await read_json(request)
    agent_id = body.get("agentId") if isinstance(body.get("agentId"), str) else None
    denied = await check_agent_key(request, agent_id)
    if denied is not None:
        return denied
    fields = _validate_registration(body)
    if fields:
        return json_error(400, "Validation failed", fields=fields)
    now = utcnow()
    capacity = Jsonb(body["capacity"]) if body.get("capacity") is not None else None
    metadata = Jsonb(body["metadata"]) if body.get("metadata") is not None else None
    region = body.get("region") or None
    existing = await cp.db.fetchrow("SELECT approval_status FROM agents WHERE agent_id = %s", (agent_id,))
    if existing is None:
        # as built every new agent lands pending (api/internal/handlers/agents.go:134-160)
        approved = agent_id in cp.config.preapproved_agents or (
            cp.config.auto_approve
            and not cp.config.fault("agent-id-per-pod")
            and not cp.config.profile.approval_required
        )
        row = await cp.db.fetchrow(
            "INSERT INTO agents (agent_id, platform, region, status, capacity, metadata, org_id, approval_status,"
            " approved_at, approved_by, created_at, updated_at)"
            " VALUES (%s, %s, %s, 'offline', %s, %s, 'default-org', %s, %s, %s, %s, %s) RETURNING *",
            (
                agent_id, body["platform"], region, capacity, metadata,
                "approved" if approved else "pending", now if approved else None,
                "sandbox-auto-approve" if approved else None, now, now,
            ),
        )  # fmt: skip
    elif existing["approval_status"] == "rejected":
        return json_error(403, "Agent registration rejected", approvalStatus="rejected", agentId=agent_id)
    else:
        # re-registration marks the agent online before its WebSocket exists, even while pending
        # (api/internal/handlers/agents.go:186-193; docs/streamspace.md#13-status-values-and-who-writes-them)
        row = await cp.db.fetchrow(
            "UPDATE agents SET platform = %s, region = %s, capacity = COALESCE(%s, capacity),"
            " metadata = COALESCE(%s, metadata), status = 'online', last_heartbeat = %s, updated_at = %s"
            " WHERE agent_id = %s RETURNING *",
            (body["platform"], region, capacity, metadata, now, now, agent_id),
        )
    assert row is not None
    if row["approval_status"] == "pending":
        message = "Agent registered and pending admin approval"
        return web.json_response(
            {"agent": agent_json(row), "approvalStatus": "pending", "message": message}, status=202
        )
    return web.json_response(
        {"agent": agent_json(row), "approvalStatus": "approved", "message": "Agent registered"}
    )


async def http_heartbeat(request: web.Request) -> web.Response:
    """``POST /api/v1/agents/:agent_id/heartbeat`` → ``{message, agentId, status, lastHeartbeat}`` / 404."""
    cp = request.app[CP]
    agent_id = request.match_info["agent_id"]
    denied = await check_agent_key(request, agent_id)
    if denied is not None:
        return denied
    body = await read_json(request)
    status, active = body.get("status"), body.get("activeSessions", 0)
    if status not in ("online", "draining") or not isinstance(active, int) or active < 0:
        return json_error(
            400, "Validation failed", fields={"status": "online|draining", "activeSessions": ">=0"}
        )
    now = utcnow()
    capacity = body.get("capacity")
    count = await cp.db.execute(
        "UPDATE agents SET last_heartbeat = %s, status = %s, capacity = COALESCE(%s, capacity), updated_at = %s"
        " WHERE agent_id = %s",
        (now, status, Jsonb(capacity) if isinstance(capacity, dict) else None, now, agent_id),
    )
    if count == 0:
        return json_error(404, "Agent not found", agentId=agent_id)
    return web.json_response(
        {
            "message": "Heartbeat updated successfully",
            "agentId": agent_id,
            "status": status,
            "lastHeartbeat": rfc3339(now),
        }
    )


# --- admin ----------------------------------------------------------------------------------------


async def list_agents(request: web.Request) -> web.Response:
    """``GET /api/v1/admin/agents[?platform=&status=&region=]`` → ``{agents, total}``, newest first."""
    query, params = "SELECT * FROM agents WHERE 1=1", []
    for name in ("platform", "status", "region"):
        if request.query.get(name):
            query += f" AND {name} = %s"  # name is from the fixed tuple above, values are parameters
            params.append(request.query[name])
    rows = await request.app[CP].db.fetch(query + " ORDER BY created_at DESC", params)
    return web.json_response({"agents": [agent_json(r) for r in rows], "total": len(rows)})


async def get_agent(request: web.Request) -> web.Response:
    """``GET /api/v1/admin/agents/:agent_id`` → A / 404."""
    agent_id = request.match_info["agent_id"]
    row = await request.app[CP].db.fetchrow("SELECT * FROM agents WHERE agent_id = %s", (agent_id,))
    if row is None:
        return json_error(404, "Agent not found", agentId=agent_id)
    out = agent_json(row)
    if request.app[CP].config.profile.gin_wire:
        out["approvalStatus"] = ""  # as built, GetAgent's SELECT leaves approval_status out (contract §2)
    return web.json_response(out)


async def delete_agent(request: web.Request) -> web.Response:
    """``DELETE /api/v1/admin/agents/:agent_id`` → 200 / 404 / 500 when sessions still reference it."""
    agent_id = request.match_info["agent_id"]
    try:
        count = await request.app[CP].db.execute("DELETE FROM agents WHERE agent_id = %s", (agent_id,))
    except psycopg.errors.ForeignKeyViolation as exc:
        return json_error(500, "Failed to deregister agent", details=str(exc).splitlines()[0])
    if count == 0:
        return json_error(404, "Agent not found", agentId=agent_id)
    return web.json_response({"message": "Agent deregistered successfully", "agentId": agent_id})


async def send_command(request: web.Request) -> web.Response:
    """``POST /api/v1/admin/agents/:agent_id/command`` → 201 C / 404 / 503 ``Agent not connected``."""
    cp = request.app[CP]
    agent_id = request.match_info["agent_id"]
    body = await read_json(request)
    action, session_id, payload = body.get("action"), body.get("sessionId"), body.get("payload") or {}
    if action not in ACTIONS or (session_id is not None and not isinstance(session_id, str)):
        return json_error(400, "Validation failed", fields={"action": f"one of {' '.join(ACTIONS)}"})
    if not isinstance(payload, dict):
        return json_error(400, "Validation failed", fields={"payload": "must be an object"})
    agent = await cp.db.fetchrow("SELECT status FROM agents WHERE agent_id = %s", (agent_id,))
    if agent is None:
        return json_error(404, "Agent not found", agentId=agent_id)
    if not cp.hub.is_connected(agent_id):
        return json_error(
            503,
            "Agent not connected",
            details="Agent must be connected via WebSocket to receive commands",
            agentId=agent_id,
            status=agent["status"],
        )
    row = await cp.dispatcher.create(agent_id, action, session_id or None, payload, long_command_id())
    await cp.dispatcher.dispatch(row)
    return web.json_response(command_json(row), status=201)


async def _decide(request: web.Request, decision: str) -> Optional[dict]:
    """Move a ``pending`` agent to ``decision``; None when it is unknown or not pending."""
    cp = request.app[CP]
    agent_id = request.match_info["agent_id"]
    now = utcnow()
    admin = request[USER_KEY].get("user_id", "admin")
    return await cp.db.fetchrow(
        "UPDATE agents SET approval_status = %s, approved_at = %s, approved_by = %s, updated_at = %s"
        " WHERE agent_id = %s AND approval_status = 'pending' RETURNING agent_id",
        (decision, now, admin, now, agent_id),
    )


async def approve_agent(request: web.Request) -> web.Response:
    """``POST /api/v1/admin/agents/:agent_id/approve`` → 200 with a fresh API key / 404 unless pending."""
    cp = request.app[CP]
    agent_id = request.match_info["agent_id"]
    if await _decide(request, "approved") is None:
        return json_error(404, "Agent not found or not pending approval", agentId=agent_id)
    api_key = secrets.token_hex(32)
    await cp.db.execute(
        "UPDATE agents SET api_key_hash = %s, api_key_created_at = %s WHERE agent_id = %s",
        (hash_password(api_key), utcnow(), agent_id),
    )
    return web.json_response(
        {
            "message": "Agent approved successfully",
            "agentId": agent_id,
            "apiKey": api_key,
            "warning": "Store this API key securely. It will not be shown again.",
        }
    )


async def reject_agent(request: web.Request) -> web.Response:
    """``POST /api/v1/admin/agents/:agent_id/reject`` → 200 / 404 unless pending."""
    agent_id = request.match_info["agent_id"]
    if await _decide(request, "rejected") is None:
        return json_error(404, "Agent not found or not pending approval", agentId=agent_id)
    return web.json_response({"message": "Agent rejected", "agentId": agent_id})
