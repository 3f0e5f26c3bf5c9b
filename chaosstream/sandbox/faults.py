"""Faults the sandbox can switch on: each reproduces a defect documented in StreamSpace's code.

The baseline (no fault) behaves as StreamSpace's ADRs and test plans intend. Each description starts with
the upstream StreamSpace file where the behaviour lives; docs/streamspace.md explains them.
"""

from typing import Dict, FrozenSet, Iterable

FAULTS: Dict[str, str] = {
    "fail-commands-while-disconnected": (
        "api/internal/services/command_dispatcher.go: the dispatcher marks a command 'failed' "
        '("agent is not connected") instead of keeping it pending while its agent is away'
    ),
    "no-replay-on-reconnect": (
        "api/internal/services/command_dispatcher.go: pending commands are not re-sent when the agent "
        "reconnects (only at API start-up)"
    ),
    "agent-id-per-pod": (
        "chart/templates/k8s-agent-deployment.yaml: AGENT_ID=<prefix>-<POD_NAME>, so every new agent pod "
        "registers as a new agent pending approval and the old id's sessions are orphaned"
    ),
    "no-heartbeat-sweep": (
        "api/internal/websocket/agent_hub.go: the hub never unregisters silent agents (no stale sweep, "
        "no read deadline), so a partitioned agent stays 'online'"
    ),
    "place-on-stale-agents": (
        "api/internal/services/agent_selector.go: the agent selector ignores status and heartbeat "
        "freshness and places sessions on agents that are gone"
    ),
    "batched-frames": (
        "api/internal/handlers/agent_websocket.go: the server joins queued messages with '\\n' into one "
        "WebSocket frame; the agent parses a frame as one JSON document and loses every command in it"
    ),
    "slow-reconnect": (
        "agents/k8s-agent/main.go: the agent reaches the control plane only after the whole backoff list "
        "(2+4+8+16+32 s scaled), far beyond the reconnect objective"
    ),
    "orphan-sessions-on-agent-restart": (
        "api/internal/websocket/agent_hub.go, chart/templates/k8s-agent-deployment.yaml: when an agent "
        "disconnects its sessions lose their agent (sessions.agent_id cleared), so they can no longer be "
        "stopped or reached"
    ),
    "vnc-tunnel-rbac": (
        "chart/templates/rbac.yaml (before P1-VNC-RBAC-001): the agent's ServiceAccount Role lacks "
        "pods/portforward, so sessions reach 'running' but every VNC tunnel is refused with 403 "
        "(vnc_error) and the UI's stream closes"
    ),
}


def validate_faults(names: Iterable[str]) -> FrozenSet[str]:
    chosen = frozenset(names)
    unknown = sorted(chosen - FAULTS.keys())
    if unknown:
        raise ValueError(
            f"unknown fault(s) {', '.join(unknown)}: run 'chaosstream sandbox faults' to list the known ones"
        )
    return chosen
