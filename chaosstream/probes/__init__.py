"""Public StreamSpace probes. Experiments reference them as `"module": "chaosstream.probes"`."""

from chaosstream.probes.agents import (
    agent_for_session,
    agent_heartbeat_age,
    agent_status,
    agents_online,
    no_sessions_placed_on,
    session_distribution,
    sessions_assigned,
    wait_for_agent_status,
    wait_for_agents_online,
)
from chaosstream.probes.commands import (
    command_status,
    commands_for_session,
    lost_commands,
    queued_commands,
    wait_for_commands_drained,
)
from chaosstream.probes.platform import agent_pods_ready, agent_rollout_complete, api_health
from chaosstream.probes.sessions import (
    all_sessions_running,
    session_pods_running,
    session_state,
    sessions_in_state,
    sessions_survived,
    wait_for_session_pods,
    wait_for_sessions_state,
)
from chaosstream.probes.vnc import stream_continuity, vnc_handshake, wait_for_vnc

__all__ = [
    "agent_status",
    "agents_online",
    "agent_heartbeat_age",
    "wait_for_agent_status",
    "wait_for_agents_online",
    "agent_for_session",
    "session_distribution",
    "no_sessions_placed_on",
    "sessions_assigned",
    "api_health",
    "agent_rollout_complete",
    "agent_pods_ready",
    "session_state",
    "sessions_in_state",
    "sessions_survived",
    "all_sessions_running",
    "wait_for_sessions_state",
    "session_pods_running",
    "wait_for_session_pods",
    "queued_commands",
    "command_status",
    "commands_for_session",
    "wait_for_commands_drained",
    "lost_commands",
    "vnc_handshake",
    "wait_for_vnc",
    "stream_continuity",
]
