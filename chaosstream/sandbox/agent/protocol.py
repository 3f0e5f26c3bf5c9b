"""Agent ↔ control-plane message envelope (``api/internal/models/agent_protocol.go``).

Every frame is one JSON text document ``{"type", "timestamp", "payload"}``. The agent parses a frame as a
single document, exactly like the real agent, so a frame carrying several newline-joined documents fails
to parse and everything in it is lost.
"""

import dataclasses
import datetime
import json
from typing import Any, Dict, Optional


class ProtocolError(ValueError):
    """A frame or a command payload could not be parsed."""


@dataclasses.dataclass(frozen=True)
class Command:
    """The payload of a ``command`` message."""

    command_id: str
    action: str
    payload: Dict[str, Any]


def now_rfc3339() -> str:
    """Current UTC time as RFC 3339 with microseconds, e.g. ``2025-01-01T12:00:00.123456Z``."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def envelope(kind: str, payload: Optional[Dict[str, Any]] = None, *, timestamp: bool = True) -> str:
    """Serialise one outgoing message; ``timestamp=False`` for the ``status`` message (the real agent omits it)."""
    message: Dict[str, Any] = {"type": kind}
    if timestamp:
        message["timestamp"] = now_rfc3339()
    if payload is not None:
        message["payload"] = payload
    return json.dumps(message, separators=(",", ":"))


def parse_frame(data: str) -> Dict[str, Any]:
    """Parse one frame as ONE JSON object; newline-batched documents raise ProtocolError ("Extra data")."""
    try:
        message = json.loads(data)
    except json.JSONDecodeError as exc:
        raise ProtocolError(f"failed to parse message: {exc}") from None
    if not isinstance(message, dict):
        raise ProtocolError("failed to parse message: top-level value is not a JSON object")
    if not isinstance(message.get("type", ""), str):
        raise ProtocolError("failed to parse message: 'type' is not a string")
    return message


def parse_command(payload: Any) -> Command:
    """Decode the payload of a ``command`` message."""
    if not isinstance(payload, dict):
        raise ProtocolError("failed to parse command: payload is not a JSON object")
    command_id = payload.get("commandId", "")
    action = payload.get("action", "")
    inner = payload.get("payload") or {}
    if not isinstance(command_id, str) or not isinstance(action, str) or not isinstance(inner, dict):
        raise ProtocolError("failed to parse command: commandId/action must be strings, payload an object")
    return Command(command_id=command_id, action=action, payload=inner)


def heartbeat(capacity: Dict[str, Any]) -> str:
    """The periodic heartbeat; the real k8s-agent always reports 0 active sessions."""
    return envelope("heartbeat", {"status": "online", "activeSessions": 0, "capacity": capacity})


def ack(command_id: str) -> str:
    return envelope("ack", {"commandId": command_id})


def complete(command_id: str, result: Dict[str, Any]) -> str:
    return envelope("complete", {"commandId": command_id, "result": result})


def failed(command_id: str, error: str) -> str:
    return envelope("failed", {"commandId": command_id, "error": error})


def pong() -> str:
    return envelope("pong")


def session_status(session_id: str, state: str, pod_name: str, pod_ip: str, vnc_port: int = 3000) -> str:
    """The ``status`` message sent after a successful start (no timestamp, like the real agent)."""
    payload = {
        "sessionId": session_id,
        "state": state,
        "vncReady": True,
        "vncPort": vnc_port,
        "platformMetadata": {"podName": pod_name, "podIP": pod_ip},
    }
    return envelope("status", payload, timestamp=False)


# VNC messages (agents/k8s-agent/agent_vnc_handler.go:18-41,92-148): type, timestamp, payload.
def vnc_ready(session_id: str, vnc_port: int, pod_name: str) -> str:
    payload: Dict[str, Any] = {"sessionId": session_id, "vncPort": vnc_port}
    if pod_name:  # omitempty
        payload["podName"] = pod_name
    return envelope("vnc_ready", payload)


def vnc_data(session_id: str, data: str) -> str:
    """``data`` is standard (padded) base64 of the pod's bytes."""
    return envelope("vnc_data", {"sessionId": session_id, "data": data})


def vnc_error(session_id: str, error: str) -> str:
    return envelope("vnc_error", {"sessionId": session_id, "error": error})
