"""Public StreamSpace actions. Experiments reference them as `"module": "chaosstream.actions"`."""

from chaosstream.actions.agents import approve_agents, kill_agent_pod, restart_agent, scale_agents
from chaosstream.actions.network import heal_agent_partition, heal_all, partition_agent
from chaosstream.actions.platform import restart_api_pod
from chaosstream.actions.sessions import (
    create_sessions,
    hibernate_session,
    kill_session_pod,
    terminate_session,
    terminate_sessions,
    wake_session,
)
from chaosstream.actions.streams import monitor_streams, stop_stream_monitor

__all__ = [
    "restart_agent",
    "approve_agents",
    "kill_agent_pod",
    "scale_agents",
    "partition_agent",
    "heal_agent_partition",
    "heal_all",
    "create_sessions",
    "terminate_session",
    "terminate_sessions",
    "hibernate_session",
    "wake_session",
    "kill_session_pod",
    "monitor_streams",
    "stop_stream_monitor",
    "restart_api_pod",
]
