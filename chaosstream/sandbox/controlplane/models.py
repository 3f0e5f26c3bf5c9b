"""JSON shapes of the API: camelCase, RFC3339 timestamps with ``Z``.

Session objects as ``api/internal/api/handlers.go`` converts them, agents and commands as
``api/internal/models/agent.go`` defines them (docs/streamspace.md#2-http-api).
"""

from typing import Any, Dict

from chaosstream.sandbox.controlplane.db import Row, rfc3339


def _s(value: Any) -> str:
    """Go scans NULL strings into ``""``."""
    return "" if value is None else str(value)


def session_json(row: Row) -> Dict[str, Any]:
    """Session object S (``convertDBSessionToResponse``): ``name`` is the id; no agent id is returned."""
    state = _s(row.get("state"))
    status: Dict[str, Any] = {
        "phase": state[:1].upper() + state[1:],
        "url": _s(row.get("url")),
        "podName": _s(row.get("pod_name")),
    }
    if row.get("last_activity") is not None:
        status["lastActivity"] = rfc3339(row["last_activity"])
    out: Dict[str, Any] = {
        "name": row["id"],
        "namespace": _s(row.get("namespace")),
        "user": _s(row.get("user_id")),
        "template": _s(row.get("template_name")),
        "state": state,
        "persistentHome": bool(row.get("persistent_home")),
        "idleTimeout": _s(row.get("idle_timeout")),
        "maxSessionDuration": _s(row.get("max_session_duration")),
        "createdAt": rfc3339(row.get("created_at")),
        "platform": _s(row.get("platform")),
        "activeConnections": row.get("active_connections") or 0,
        "streamingProtocol": _s(row.get("streaming_protocol")),
        "streamingPort": row.get("streaming_port") or 0,
        "streamingPath": _s(row.get("streaming_path")),
        "status": status,
    }
    if row.get("memory") or row.get("cpu"):
        out["resources"] = {"memory": _s(row.get("memory")), "cpu": _s(row.get("cpu"))}
    return out


def agent_json(row: Row) -> Dict[str, Any]:
    """Agent object A (``models.Agent``); optional fields are omitted when NULL, key hashes never shown."""
    out: Dict[str, Any] = {"id": str(row["id"]), "agentId": row["agent_id"], "platform": row["platform"]}
    if row.get("region"):
        out["region"] = row["region"]
    out["status"] = _s(row.get("status"))
    for key, column in (("capacity", "capacity"), ("websocketId", "websocket_id"), ("metadata", "metadata")):
        if row.get(column) is not None:
            out[key] = row[column]
    if row.get("last_heartbeat") is not None:
        out["lastHeartbeat"] = rfc3339(row["last_heartbeat"])
    out["approvalStatus"] = _s(row.get("approval_status"))
    if row.get("approved_at") is not None:
        out["approvedAt"] = rfc3339(row["approved_at"])
    if row.get("approved_by"):
        out["approvedBy"] = row["approved_by"]
    out["createdAt"] = rfc3339(row.get("created_at"))
    out["updatedAt"] = rfc3339(row.get("updated_at"))
    return out


def command_json(row: Row) -> Dict[str, Any]:
    """Command object C (``models.AgentCommand``)."""
    out: Dict[str, Any] = {
        "id": str(row["id"]),
        "commandId": row["command_id"],
        "agentId": _s(row.get("agent_id")),
    }
    if row.get("session_id"):
        out["sessionId"] = row["session_id"]
    out["action"] = row["action"]
    if row.get("payload") is not None:
        out["payload"] = row["payload"]
    out["status"] = _s(row.get("status"))
    if row.get("error_message"):
        out["errorMessage"] = row["error_message"]
    out["createdAt"] = rfc3339(row.get("created_at"))
    for key, column in (
        ("sentAt", "sent_at"),
        ("acknowledgedAt", "acknowledged_at"),
        ("completedAt", "completed_at"),
    ):
        if row.get(column) is not None:
            out[key] = rfc3339(row[column])
    return out
