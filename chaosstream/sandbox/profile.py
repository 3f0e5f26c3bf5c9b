"""Sandbox profiles: how the control plane and the agents behave.

`intended` behaves as StreamSpace's ADRs and test plans promise; `as-built` as the v2 code on branch
`feature/streamspace-v2-agent-refactor` does (`streamspace-as-built.md` §2). The control plane, the agent
Deployments and the start-up consult the flags below, never the profile's name, so a later as-built
behaviour is one more flag. Each flag cites the upstream code it reproduces.
"""

import dataclasses
from typing import Dict

__all__ = ["Profile", "INTENDED", "AS_BUILT", "PROFILES", "profile_named"]


@dataclasses.dataclass(frozen=True)
class Profile:
    name: str
    # New agents register as `pending` (202, row status offline) and need an admin's approval before they
    # open their WebSocket; the agent re-POSTs its registration meanwhile.
    # api/internal/handlers/agents.go:134-160,244-250; agents/k8s-agent/main.go:551-610
    approval_required: bool
    # Agent ids are `$(AGENT_ID_PREFIX)-$(POD_NAME)`: every new pod is a new agent.
    # chart/templates/k8s-agent-deployment.yaml:45-52 (static manifests use a fixed AGENT_ID instead)
    agent_id_per_pod: bool
    # Placement ignores approval: `status='online' AND last_heartbeat > NOW()-90s`, fewest sessions wins.
    # api/internal/services/agent_selector.go:163-173
    selector_ignores_approval: bool
    # Re-registration of an existing row sets status='online', last_heartbeat=now regardless of approval
    # (api/internal/handlers/agents.go:186-193). Both profiles do this: the test plans say nothing else.
    reregistration_marks_online: bool = True
    # The agent's `complete` only updates agent_commands; no status message follows stop/hibernate/wake, so
    # the session stays `terminating` / `hibernating` / `waking` (and a wake of `hibernating` is a 409).
    # api/internal/handlers/agent_websocket.go:420-440; agents/k8s-agent/agent_handlers.go:199-247;
    # api/internal/api/handlers.go:1350-1357
    complete_updates_sessions: bool = True
    # Per-user quota with the code's default limits for every user (GetUserByUsername loads no quota row):
    # 5 sessions, 2000m/4096Mi per session, 4000m/8192Mi in total; usage counts running/starting/hibernated/
    # waking rows; an unknown user is a 403 too. api/internal/quota/enforcer.go:190-206,305-308;
    # api/internal/db/users.go:226-236; api/internal/api/handlers.go:727-777
    default_quota: bool = False
    # gin's wire details: unknown route / wrong method → `404 page not found` text (gin.New, no 405); login
    # with a missing field → 400 {"error":"Invalid request body"}; GET /admin/agents/:id does not select
    # approval_status (""); a created session's `tags` is null when none were given.
    # api/cmd/main.go:245; api/internal/auth/handlers.go:236-241; api/internal/handlers/agents.go (GetAgent)
    gin_wire: bool = False
    # The dispatcher looks the agent up in its own replica's hub only (no Redis: AGENTHUB_REDIS_ENABLED=false,
    # the chart default) and marks the command `failed` "agent is not connected" when it is not there; the
    # row is never re-sent. With the chart's two API replicas the one without the agent's socket fails every
    # command it handles. api/internal/services/command_dispatcher.go:217-221;
    # api/internal/websocket/agent_hub.go:498-540,586-606; api/cmd/main.go:170-205
    commands_fail_unless_local: bool = False
    # The chart's API Deployment replicas (chart/values.yaml:234) and whether they share agent routing
    # (the Redis AgentHub: intended; the chart's default `redis.enabled=false`: as built, values.yaml:450).
    api_replicas: int = 2
    shared_agent_routing: bool = True
    # The agent's VNC tunnel as built: opened once, 2 s after start_session (in a goroutine), never on
    # demand, never after an agent restart or a wake; `vnc_close` (sent on every UI disconnect) closes it
    # for good; a tunnel that cannot open reports `vnc_error` only after the 30 s ready timeout; a pod-side
    # EOF ends it silently; UI→pod bytes wait behind a running command (one read loop).
    # agents/k8s-agent/agent_vnc_handler.go:150-172, agent_vnc_tunnel.go:98-159,161-184,189-218,338-380,
    # agent_handlers.go:142-147 (start only; wake 300-350 opens none), main.go:807-843
    vnc_tunnel_as_built: bool = False
    # The VNC proxy as built: every UI relay of an agent reads that agent's one `Receive` channel (256,
    # filled by the hub's reader, full → dropped), so concurrent streams of one agent steal each other's
    # messages; `vnc_ready` is ignored; `Receive` is never closed, so an agent disconnect leaves the UI
    # socket open and silent until the UI sends; the old relay's cleanup of a replaced connection deletes
    # the new one's registration and sends `vnc_close`; a NULL sessions.agent_id fails the Scan → 404.
    # api/internal/handlers/vnc_proxy.go:136-149,286-307,329-334,410-459;
    # api/internal/handlers/agent_websocket.go:288-295; api/internal/websocket/agent_hub.go:298-316
    vnc_proxy_as_built: bool = False


INTENDED = Profile(
    name="intended",
    approval_required=False,
    agent_id_per_pod=False,
    selector_ignores_approval=False,
)

AS_BUILT = Profile(
    name="as-built",
    approval_required=True,
    agent_id_per_pod=True,
    selector_ignores_approval=True,
    complete_updates_sessions=False,
    default_quota=True,
    gin_wire=True,
    commands_fail_unless_local=True,
    shared_agent_routing=False,
    vnc_tunnel_as_built=True,
    vnc_proxy_as_built=True,
)

PROFILES: Dict[str, Profile] = {p.name: p for p in (INTENDED, AS_BUILT)}


def profile_named(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}: use one of {', '.join(PROFILES)}") from None
