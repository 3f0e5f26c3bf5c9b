"""Writes experiments/*.json: one place for the shared configuration block and the activity shapes.

Run `python experiments/build.py` after editing; a test checks the committed JSON matches this file.
Every value comes from an environment variable whose default is StreamSpace's real value (contract
timers and chart names), so the same files run against the sandbox and a real cluster.
"""

import json
import sys
from pathlib import Path
from typing import Any, Dict, List

HERE = Path(__file__).resolve().parent

CONFIGURATION: Dict[str, Any] = {
    "streamspace_api_url": ("STREAMSPACE_API_URL", "http://localhost:8000", None),
    "streamspace_namespace": ("STREAMSPACE_NAMESPACE", "streamspace", None),
    "streamspace_agent_deployment": ("STREAMSPACE_AGENT_DEPLOYMENT", "streamspace-k8s-agent", None),
    "streamspace_agent_selector": (
        "STREAMSPACE_AGENT_SELECTOR",
        "app.kubernetes.io/component=k8s-agent",
        None,
    ),
    "streamspace_agent_container": ("STREAMSPACE_AGENT_CONTAINER", "k8s-agent", None),
    "streamspace_poll_interval": ("STREAMSPACE_POLL_INTERVAL", "1", "float"),
    "agent_id_prefix": ("STREAMSPACE_AGENT_ID_PREFIX", "k8s-prod-cluster", None),
    # the REGION this cluster's agents register with: every cluster of the chart uses the same prefix, so
    # the region keeps the agent probes on the cluster of the run's kube context ("" = every cluster)
    "agent_region": ("STREAMSPACE_AGENT_REGION", "", None),
    "session_template": ("STREAMSPACE_SESSION_TEMPLATE", "firefox-browser", None),
    "session_user": ("STREAMSPACE_SESSION_USER", "admin", None),
    # every StreamSpace user has the default quota (5 sessions, 4000m): larger experiments spread over these
    "session_users": ("STREAMSPACE_SESSION_USERS", "admin", None),
    "reconnect_objective": ("STREAMSPACE_RECONNECT_OBJECTIVE", "30", "float"),
    "offline_threshold": ("STREAMSPACE_OFFLINE_THRESHOLD", "60", "float"),
    "drain_objective": ("STREAMSPACE_DRAIN_OBJECTIVE", "60", "float"),
    "start_objective": ("STREAMSPACE_START_OBJECTIVE", "120", "float"),
    "partition_method": ("STREAMSPACE_PARTITION_METHOD", "ephemeral", None),
    "partition_duration": ("STREAMSPACE_PARTITION_DURATION", "120", "float"),
    "partition_image": ("STREAMSPACE_PARTITION_IMAGE", "nicolaka/netshoot:v0.13", None),
    "min_agents": ("STREAMSPACE_MIN_AGENTS", "3", "int"),
    # the chart's k8sAgent.config.sessionNamespace: where session pods live ("" = the agent's namespace)
    "streamspace_session_namespace": ("STREAMSPACE_SESSION_NAMESPACE", "", None),
    # persistent homes only when asked: the agent puts them on StorageClass `standard` (hard-coded,
    # agents/k8s-agent/agent_k8s_operations.go:543), which EKS and AKS lack; `chaosstream check` says so
    "session_persistent_home": ("STREAMSPACE_SESSION_PERSISTENT_HOME", "false", "bool"),
    # StreamSpace's E2E plan: VNC reachable within 10 s of `running` (1.1), reconnects in < 5 s (1.2), and
    # no drop during a 5-minute session (1.1)
    "vnc_ready_objective": ("STREAMSPACE_VNC_READY_OBJECTIVE", "10", "float"),
    "vnc_reconnect_objective": ("STREAMSPACE_VNC_RECONNECT_OBJECTIVE", "5", "float"),
    "stream_soak": ("STREAMSPACE_STREAM_SOAK", "300", "float"),
}

RUNTIME = {"hypothesis": {"strategy": "default"}, "rollbacks": {"strategy": "always"}}


def configuration() -> Dict[str, Any]:
    out = {}
    for key, (env, default, kind) in CONFIGURATION.items():
        entry = {"type": "env", "key": env, "default": default}
        if kind:
            entry["env_var_type"] = kind
        out[key] = entry
    return out


def probe(name: str, func: str, tolerance: Any = None, **arguments: Any) -> Dict[str, Any]:
    activity: Dict[str, Any] = {
        "type": "probe",
        "name": name,
        "provider": {"type": "python", "module": "chaosstream.probes", "func": func, "arguments": arguments},
    }
    if tolerance is not None:
        activity["tolerance"] = tolerance
    return activity


def action(name: str, func: str, **arguments: Any) -> Dict[str, Any]:
    return {
        "type": "action",
        "name": name,
        "provider": {"type": "python", "module": "chaosstream.actions", "func": func, "arguments": arguments},
    }


def within(target: str, upper: str, name: str) -> Dict[str, Any]:
    """A probe tolerance: `target` of the probe output is at most `upper` seconds."""
    return {
        "type": "probe",
        "name": name,
        "provider": {
            "type": "python",
            "module": "chaosstream.tolerances",
            "func": "within",
            "arguments": {"target": target, "upper": upper},
        },
    }


def holds(*keys: str) -> Dict[str, Any]:
    return {
        "type": "probe",
        "name": "holds",
        "provider": {
            "type": "python",
            "module": "chaosstream.tolerances",
            "func": "all_true",
            "arguments": {"keys": list(keys)},
        },
    }


def agent_online(timeout: str = "${reconnect_objective}") -> Dict[str, Any]:
    return probe(
        "an-agent-is-online",
        "wait_for_agent_status",
        within("elapsed_s", "${reconnect_objective}", "online-within-reconnect-objective"),
        status="online",
        agent_id_prefix="${agent_id_prefix}",
        region="${agent_region}",
        timeout=timeout,
    )


def wait_agent(name: str, status: str, timeout: str, **extra: Any) -> Dict[str, Any]:
    """A method wait-probe on the agent (the newest with the configured id prefix)."""
    return probe(
        name,
        "wait_for_agent_status",
        status=status,
        agent_id_prefix="${agent_id_prefix}",
        region="${agent_region}",
        timeout=timeout,
        **extra,
    )


def create_one(name: str, **extra: Any) -> Dict[str, Any]:
    """One session of the configured template, spread over `session_users` (or `session_user`)."""
    return action(
        name,
        "create_sessions",
        count=1,
        template="${session_template}",
        user="${session_user}",
        users="${session_users}",
        **extra,
    )


def try_to_place_a_session(name: str = "try-to-place-a-session") -> Dict[str, Any]:
    """Ask for a session while agents are unavailable: a 503 is counted, not an error."""
    return create_one(name, allow_unavailable=True)


def no_session_on_offline_agents(name: str) -> Dict[str, Any]:
    return probe(name, "no_sessions_placed_on", agent_status="offline", raise_on_failure=True)


def a_new_session_starts(name: str) -> list:
    """Create one session and wait for it (with every session this run created) to run.

    The creation is a check of the recovered system, not a fault: it runs as a probe, so a refusal (503 No
    agents available after the fault) is a finding (verdict 1), not "the fault was not injected" (3).
    """
    creation = create_one(name)
    creation["type"] = "probe"
    return [
        creation,
        probe(
            "new-session-start-time", "wait_for_sessions_state", state="running", timeout="${start_objective}"
        ),
    ]


def streams_start(name: str = "vnc-ready-time") -> list:
    """The run's sessions stream within the VNC objective (seed 1.1), then the monitor holds one stream each."""
    return [
        probe(
            name,
            "wait_for_vnc",
            within("elapsed_s", "${vnc_ready_objective}", "streams-within-vnc-ready-objective"),
            timeout="${vnc_ready_objective}",
        ),
        action("hold-users-streams-open", "monitor_streams"),
    ]


def streams_back(name: str = "user-visible-outage") -> Dict[str, Any]:
    """Every monitored stream carries bytes again within the VNC reconnect objective (seed 1.2) after the
    fault ended; the output is the outage users lived through, per session."""
    return probe(
        name,
        "stream_continuity",
        within("reconnect_after_fault_s_max", "${vnc_reconnect_objective}", "streams-back-within-objective"),
        max_reconnect_s="${vnc_reconnect_objective}",
    )


STOP_STREAMS = action("stop-the-stream-monitor", "stop_stream_monitor")
NO_COMMAND_LOST = probe(
    "no-command-lost",
    "lost_commands",
    {"type": "range", "range": [0, 0], "target": "count"},
    stuck_after="${drain_objective}",
)
API_HEALTHY = probe("api-healthy", "api_health", holds("healthy"))
SESSIONS_SURVIVED = probe("created-sessions-still-running", "sessions_survived", holds("ok"))
CLEAN_UP_SESSIONS = action("terminate-created-sessions", "terminate_sessions")


def experiment(
    title: str, description: str, tags: List[str], hypothesis: Dict[str, Any], method: list, rollbacks: list
):
    return {
        "version": "1.0.0",
        "title": title,
        "description": description,
        "tags": ["streamspace", *tags],
        "contributions": {"availability": "high", "reliability": "high"},
        "configuration": configuration(),
        "steady-state-hypothesis": hypothesis,
        "method": method,
        "rollbacks": rollbacks,
        "runtime": RUNTIME,
    }


def create_and_start(count: int, persistent_home: Any = False, spread: bool = True) -> list:
    """Create `count` sessions (spread over `session_users`, or all for `session_user`: the VNC proxy streams
    a session to its owner only) and wait for them to run."""
    users = {"users": "${session_users}"} if spread else {}
    return [
        action(
            "create-sessions",
            "create_sessions",
            count=count,
            template="${session_template}",
            user="${session_user}",
            **users,
            persistent_home=persistent_home,
        ),
        probe(
            "sessions-start-time", "wait_for_sessions_state", state="running", timeout="${start_objective}"
        ),
    ]


EXPERIMENTS: Dict[str, Dict[str, Any]] = {
    "agent-disconnect.json": experiment(
        "Agent disconnect during active sessions: the agent reconnects and the sessions survive",
        "StreamSpace integration test 3.1, automated. With sessions running, rollout-restart the k8s agent "
        "(kubectl rollout restart). The new agent pod must be online within the reconnect objective (seed target "
        "30 s), the same sessions must still run (pods not deleted, state running, still assigned to an online "
        "agent), and a new session must start afterwards. Users' VNC streams (one per session, held through the API "
        "as a browser would) must carry bytes again within the VNC reconnect objective (seed 1.2: 5 s) after the "
        "agent is back; the journal carries the user-visible outage per session.",
        ["agent", "failover", "rollout", "vnc"],
        {"title": "An agent is online and our sessions run", "probes": [agent_online(), SESSIONS_SURVIVED]},
        [
            *create_and_start(3),
            *streams_start(),
            action("rollout-restart-the-agent", "restart_agent", wait=False),
            wait_agent("agent-reconnect-time", "online", "${reconnect_objective}"),
            streams_back(),
            probe(
                "session-pods-not-deleted",
                "session_pods_running",
                raise_on_failure=True,
                region="${agent_region}",
            ),
            probe("sessions-still-running", "sessions_survived", raise_on_failure=True),
            probe("sessions-still-assigned-to-an-online-agent", "sessions_assigned", raise_on_failure=True),
            *a_new_session_starts("create-a-new-session-after-the-restart"),
        ],
        [STOP_STREAMS, CLEAN_UP_SESSIONS],
    ),
    "command-retry.json": experiment(
        "Command retry during agent downtime: commands queued while the agent is down are delivered",
        "StreamSpace integration test 3.2, automated. Start two sessions, kill the agent pod, and terminate both "
        "sessions while the agent is away: the API must answer 202 and keep the stop_session commands pending; "
        "after the agent reconnects they must be delivered and completed, the sessions terminated within the "
        "drain objective, and no command lost. On an HA install the standbys go down with the leader (else one takes "
        "the Lease over within a retry period and nothing is ever queued).",
        ["agent", "commands", "retry"],
        {
            "title": "An agent is online and no command is lost or stuck",
            "probes": [
                agent_online(),
                NO_COMMAND_LOST,
                probe(
                    "command-queue-drained",
                    "wait_for_commands_drained",
                    within("elapsed_s", "${drain_objective}", "drained-within-objective"),
                    timeout="${drain_objective}",
                ),
            ],
        },
        [
            *create_and_start(2),
            # the agents serving our two sessions (one pod with one agent; two with several agents); on an HA
            # install with their standbys, else a standby takes over at once and no command ever queues
            action(
                "kill-the-agent-pod",
                "kill_agent_pod",
                grace_period=0,
                max_pods=2,
                serving_sessions=True,
                standbys=True,
            ),
            wait_agent("agent-marked-offline", "offline", "${offline_threshold}"),
            action("terminate-sessions-while-the-agent-is-down", "terminate_sessions", ignore_missing=False),
            probe(
                "stop-commands-queued-as-pending",
                "queued_commands",
                status="pending",
                action="stop_session",
                min_count=2,
            ),
            wait_agent("agent-reconnect-time", "online", "${reconnect_objective}"),
            probe(
                "commands-drain-time",
                "wait_for_commands_drained",
                tag="created",
                timeout="${drain_objective}",
            ),
            probe(
                "sessions-terminated-time",
                "wait_for_sessions_state",
                state="terminated",
                timeout="${drain_objective}",
            ),
        ],
        [CLEAN_UP_SESSIONS],
    ),
    "agent-heartbeat.json": experiment(
        "Heartbeat timeout under a network partition: the agent is marked offline and nothing is placed on it",
        "StreamSpace test 3.3, made strict. Partition the agent from the API (default method: an ephemeral "
        "container with NET_ADMIN, which works on a stock deployment). The control plane must mark it offline "
        "within the threshold (2 missed heartbeats), must not place a new session on it while it is offline, and "
        "after healing it must be online again within the reconnect objective, and a user's VNC stream (held "
        "through the API during the partition) must carry bytes again within the VNC reconnect objective (seed "
        "1.2: 5 s); the journal carries the user-visible outage. The partition heals itself after "
        "its duration and the rollbacks heal it whatever happens.",
        ["agent", "heartbeat", "network", "vnc"],
        {"title": "An agent is online", "probes": [agent_online()]},
        [
            *create_and_start(1),
            *streams_start(),
            action(
                "partition-the-agent-from-the-api",
                "partition_agent",
                method="${partition_method}",
                duration="${partition_duration}",
                image="${partition_image}",
            ),
            wait_agent("offline-detection-time", "offline", "${offline_threshold}"),
            try_to_place_a_session(),
            no_session_on_offline_agents("no-session-placed-on-the-offline-agent"),
            action("heal-the-partition", "heal_agent_partition"),
            wait_agent("recovery-time", "online", "${reconnect_objective}"),
            streams_back(),
        ],
        [STOP_STREAMS, action("heal-any-partition", "heal_agent_partition"), CLEAN_UP_SESSIONS],
    ),
    "multi-agent-failover.json": experiment(
        "Multi-agent failover and load balancing: sessions go only to healthy agents and stay balanced",
        "StreamSpace test 3.4, made strict. With three agents, six sessions spread within ±2. One agent is cut off "
        "(a network partition keeps its identity, as a node or zone failure would); it must be marked offline, new "
        "sessions must go only to the healthy agents, and after recovery all agents are online and the spread is "
        "within ±2 again. On an HA install (replicas sharing one fixed id) the leader holding the Lease and its "
        "ready standbys count as the agents; the leader is the one cut off, and as it still reaches the Kubernetes "
        "API it keeps the Lease: no standby takes over, so the new sessions need another healthy agent.",
        ["agent", "failover", "load-balancing"],
        {
            "title": "Every agent is online and sessions are balanced within ±2",
            "probes": [
                # HA replicas count as what they provide: a leader holding the Lease plus ready standbys
                probe(
                    "enough-agents-online",
                    "agents_online",
                    True,
                    min_count="${min_agents}",
                    agent_id_prefix="${agent_id_prefix}",
                    region="${agent_region}",
                    count_standbys=True,
                ),
                probe(
                    "sessions-balanced",
                    "session_distribution",
                    {"type": "range", "range": [0, 2], "target": "spread"},
                    region="${agent_region}",
                ),
            ],
        },
        [
            *create_and_start(6),
            action(
                "lose-one-agent",
                "partition_agent",
                method="${partition_method}",
                duration="${partition_duration}",
                image="${partition_image}",
                max_pods=1,
            ),
            probe(
                "loss-detection-time",
                "wait_for_agent_status",
                status="offline",
                timeout="${offline_threshold}",
            ),
            # a check of the degraded system, not a fault: a 503 (no healthy agent took them) is a finding
            {
                **action(
                    "create-sessions-during-the-loss",
                    "create_sessions",
                    count=3,
                    template="${session_template}",
                    user="${session_user}",
                    users="${session_users}",
                ),
                "type": "probe",
            },
            no_session_on_offline_agents("new-sessions-only-on-healthy-agents"),
            probe(
                "new-sessions-start-time",
                "wait_for_sessions_state",
                state="running",
                timeout="${start_objective}",
            ),
            action("recover-the-agent", "heal_agent_partition"),
            probe(
                "all-agents-back-time",
                "wait_for_agents_online",
                min_count="${min_agents}",
                agent_id_prefix="${agent_id_prefix}",
                region="${agent_region}",
                count_standbys=True,
                timeout="${reconnect_objective}",
            ),
        ],
        [action("heal-any-partition", "heal_agent_partition"), CLEAN_UP_SESSIONS],
    ),
    "session-pod-loss.json": experiment(
        "Session pod loss: the pod comes back for the same session with the same home volume",
        "A session's pod is deleted (node loss, eviction). Kubernetes must bring a new pod up for the same "
        "session, mounting the same PVC (<session>-home, not recreated) when the session has a persistent home "
        "(STREAMSPACE_SESSION_PERSISTENT_HOME=true, which needs StorageClass 'standard': `chaosstream check` "
        "says so), and the session must stay running in the StreamSpace API throughout. The user's VNC stream "
        "must carry bytes again within the VNC reconnect objective once the new pod is ready; the journal "
        "carries the user-visible outage.",
        ["session", "pod", "storage", "vnc"],
        {
            "title": "The API is healthy and our sessions run",
            "probes": [
                API_HEALTHY,
                SESSIONS_SURVIVED,
            ],
        },
        [
            *create_and_start(1, persistent_home="${session_persistent_home}"),
            *streams_start(),
            action("kill-the-session-pod", "kill_session_pod", grace_period=0),
            probe("new-session-pod-time", "wait_for_session_pods", timeout="${start_objective}"),
            probe("session-still-running-in-the-api", "sessions_survived", raise_on_failure=True),
            streams_back("stream-back-after-the-new-pod"),
        ],
        [STOP_STREAMS, CLEAN_UP_SESSIONS],
    ),
    "vnc-streaming.json": experiment(
        "VNC streaming: users' desktops stream within 10 s, survive normal operation and an API pod restart",
        "StreamSpace E2E test plan 1.1, automated. Two sessions start; their VNC streams (through the API's "
        "/api/v1/vnc/:sessionId, RFB handshake and framebuffer updates, as a browser) must be reachable within "
        "the VNC ready objective (10 s). Held open for the soak time (5 minutes; --timers fast scales it), no "
        "stream may drop. Then one of the chart's two API pods is deleted: the streams it held must come back "
        "within the VNC reconnect objective (seed 1.2: 5 s) once the replacement is ready, served by the other "
        "replica meanwhile. The journal carries the user-visible outage per session.",
        ["vnc", "streaming", "api"],
        {
            "title": "The API is healthy and our sessions stream",
            "probes": [API_HEALTHY, probe("our-sessions-stream", "vnc_handshake", holds("ok"))],
        },
        [
            *create_and_start(2, spread=False),
            *streams_start(),
            probe(
                "no-drop-during-normal-operation",
                "stream_continuity",
                {"type": "range", "range": [0, 0], "target": "interruptions"},
                observe="${stream_soak}",
                max_interruptions=0,
            ),
            action("restart-one-api-pod", "restart_api_pod", timeout="${start_objective}"),
            streams_back("streams-back-after-the-api-restart"),
        ],
        [STOP_STREAMS, CLEAN_UP_SESSIONS],
    ),
    "total-agent-outage.json": experiment(
        "Total agent outage: the API stays healthy, refuses new sessions cleanly and recovers",
        "Every agent of the cluster goes away (scaled to zero, as a broken agent release or a lost node pool "
        "would). The API must keep answering /health fast and keep serving the session list, must refuse new "
        "sessions with 503 instead of placing them on a dead agent, and once the agents come back a new session "
        "must start again.",
        ["agent", "outage", "api"],
        {
            "title": "The API is healthy and an agent is online",
            "probes": [
                API_HEALTHY,
                agent_online(),
            ],
        },
        [
            action("scale-the-agents-to-zero", "scale_agents", replicas=0, duration="${partition_duration}"),
            wait_agent("agent-marked-offline", "offline", "${offline_threshold}"),
            probe("api-health-during-the-outage", "api_health", raise_on_failure=True),
            try_to_place_a_session(),
            no_session_on_offline_agents("nothing-placed-on-an-offline-agent"),
            action("bring-the-agents-back", "scale_agents", replicas=-1),
            wait_agent("agent-back-time", "online", "${reconnect_objective}"),
            *a_new_session_starts("create-a-session-after-recovery"),
        ],
        [action("restore-the-agent-replicas", "scale_agents", replicas=-1), CLEAN_UP_SESSIONS],
    ),
}


def render(data: Dict[str, Any]) -> str:
    return json.dumps(data, indent=2) + "\n"


def main() -> int:
    check = "--check" in sys.argv
    stale = []
    for name, data in EXPERIMENTS.items():
        path = HERE / name
        text = render(data)
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        print("out of date (run python experiments/build.py):", ", ".join(stale))
        return 1
    if not check:
        # The scheduled-run ConfigMap embeds the experiments: keep it in step.
        import runpy

        runpy.run_path(str(HERE.parent / "deploy" / "kubernetes" / "render.py"), run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
