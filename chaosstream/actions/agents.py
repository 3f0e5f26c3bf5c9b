"""Actions on the agent Deployment: rollout restart, pod kills, scaling — each with its inverse."""

import os
import random
import time
from typing import Any, Dict, List

from chaoslib.types import Configuration, Secrets

from chaosstream import arguments
from chaosstream.clients.kube import Cluster, KubeError, check_namespace, pod_alive
from chaosstream.clients.rollout import wait_for_rollout
from chaosstream.faults import process, scaledown
from chaosstream.faults.targets import (
    agent_container_of,
    agent_env_id,
    agent_selector,
    check_agent_deployment,
    check_agent_pods,
    record_hit,
    serving_pods,
)
from chaosstream.selection import remember_agents, remember_fault_end, targeted_agents
from chaosstream.settings import resolve_settings
from chaosstream.timeutil import iso, utcnow

__all__ = ["restart_agent", "kill_agent_pod", "scale_agents", "approve_agents"]

RESTART_ANNOTATION = "kubectl.kubernetes.io/restartedAt"


def restart_agent(
    namespace: str = None,
    deployment: str = None,
    wait: bool = False,
    timeout: float = 120.0,
    allow_non_agent: bool = False,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Dict[str, Any]:
    """Rollout-restart the StreamSpace agent Deployment (what `kubectl rollout restart` does).

    Sets the pod-template annotation `kubectl.kubernetes.io/restartedAt` to now, so Kubernetes replaces
    every agent pod. `namespace` and `deployment` default to the configured `streamspace_namespace` and
    `streamspace_agent_deployment`; another namespace is refused. With `wait=true` it returns after the
    rollout finished (bounded by `timeout`). A Deployment whose pods are not StreamSpace agents is refused
    unless `allow_non_agent=true`.

    Returns `{"namespace", "deployment", "restartedAt", "previous_pods": [...], "agent_ids": [...], "ids":
    "fixed" | "per-pod", "rollout": {...} | null}`; the agents hit are remembered, so a later
    `wait_for_agent_status` recognises their reconnection by identity.
    Its own inverse: the Deployment's controller restores the pods; nothing to roll back.
    """
    settings = resolve_settings(configuration, secrets)
    ns = check_namespace(namespace, settings.namespace)
    name = arguments.text(deployment, "deployment", what="a Deployment name") or settings.agent_deployment
    timeout = arguments.seconds(timeout, "timeout")
    allow_non_agent = arguments.flag(allow_non_agent, "allow_non_agent")
    cluster = Cluster(secrets, settings.kube_timeout)
    check_agent_deployment(cluster, ns, name, settings.agent_container, allow_non_agent)
    pods = _deployment_pods(cluster, ns, name)
    before = [p.metadata.name for p in pods]
    hit = record_hit(settings, "restart_agent", [p for p in pods if pod_alive(p)], cluster.context)
    now = iso(utcnow())
    body = {"spec": {"template": {"metadata": {"annotations": {RESTART_ANNOTATION: now}}}}}
    cluster.apps.patch_namespaced_deployment(name, ns, body)
    rollout = wait_for_rollout(settings, secrets, timeout, settings.poll_interval) if wait else None
    return {
        "namespace": ns,
        "deployment": name,
        "restartedAt": now,
        "previous_pods": before,
        "agent_ids": hit["agent_ids"],
        "ids": hit["ids"],
        "rollout": rollout,
    }


def _deployment_pods(cluster: Cluster, ns: str, name: str) -> List[Any]:
    """The pods of one Deployment (its own selector), terminating ones included."""
    dep = cluster.apps.read_namespaced_deployment(name, ns)
    labels = (dep.spec.selector.match_labels or {}) if dep.spec.selector else {}
    selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    if not selector:
        return []
    return cluster.core.list_namespaced_pod(ns, label_selector=selector).items


def kill_agent_pod(
    grace_period: int = 0,
    max_pods: int = 1,
    namespace: str = None,
    label_selector: str = None,
    serving_sessions: bool = False,
    allow_non_agent: bool = False,
    mode: str = "delete",
    duration: float = 60.0,
    image: str = None,
    start_timeout: float = 120.0,
    standbys: bool = False,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Dict[str, Any]:
    """Take agent pods down, at most `max_pods` (default 1), chosen at random among running agent pods
    matching `label_selector` (default: `streamspace_agent_selector`), by `mode`. With
    `serving_sessions=true` only the pods of the agents serving the sessions this run created are
    candidates (with several agents, the sessions' own agents are the ones to hit).

    HA replicas (one fixed id, ENABLE_HA=true) serve through the holder of Lease
    `streamspace-agent-<id>`: the leader is the pod hit, and a standby takes over (at once after a
    graceful exit, which releases the Lease). `standbys=true` takes down the standbys of each hit agent
    too (first, so none takes over meanwhile): the agent is then really down until its Deployment's new
    pods elect a leader — what an experiment about agent downtime needs on an HA install.

    - `delete` (default): an API deletion (`kubectl delete pod`). The kubelet sends SIGTERM first and
      floors the grace period at 2 s, so even `grace_period=0` lets the agent close its WebSocket cleanly:
      StreamSpace sees a goodbye, not a crash. The Deployment replaces the pod (a new pod, a new agent id
      with the chart's per-pod ids).
    - `crash`: the agent process is killed inside its pod (SIGKILL; SIGQUIT when it is its container's
      PID 1) by an ephemeral container sharing its process namespace: no goodbye; the kubelet restarts the
      container in the same pod. Verified by the restart.
    - `hang`: the agent process is frozen (SIGSTOP) for `duration` seconds, then thawed: the socket stays
      open and silent, so only heartbeat-timeout detection notices. Self-expiring and recorded;
      `heal_agent_partition` / `heal_all` / `chaosstream heal` thaw it early. Needs the agent not to be
      its container's PID 1 (an init such as tini, or `shareProcessNamespace`): the kernel ignores SIGSTOP
      sent to a namespace's init from inside, and the action then fails saying so.

    `crash` and `hang` use `image` (default `STREAMSPACE_PARTITION_IMAGE`, else nicolaka/netshoot:v0.13),
    pulled `IfNotPresent` within `start_timeout`. Pods that are not StreamSpace agents are refused unless
    `allow_non_agent=true`.

    Returns `{"namespace", "killed": [pod names], "agent_ids", "grace_period", "mode", "details": [...]}`;
    the agents hit are remembered for later waits of the run.
    """
    settings = resolve_settings(configuration, secrets)
    ns = check_namespace(namespace, settings.namespace)
    selector = agent_selector(label_selector, settings.agent_selector)
    max_pods = arguments.whole(max_pods, "max_pods", minimum=1)
    grace_period = arguments.whole(grace_period, "grace_period", minimum=0)
    allow_non_agent = arguments.flag(allow_non_agent, "allow_non_agent")
    standbys = arguments.flag(standbys, "standbys")
    mode = arguments.choice(mode, "mode", ("delete", "crash", "hang"))
    start_timeout = arguments.seconds(start_timeout, "start_timeout")
    if mode == "hang":
        duration = arguments.seconds(duration, "duration")
    if image is None:
        image = os.environ.get("STREAMSPACE_PARTITION_IMAGE") or "nicolaka/netshoot:v0.13"
    image = arguments.text(image, "image", required=True, what="a container image with sh")
    cluster = Cluster(secrets, settings.kube_timeout)
    core = cluster.core
    alive = [p for p in core.list_namespaced_pod(ns, label_selector=selector).items if pod_alive(p)]
    if not alive:
        raise arguments.ArgumentError(
            f"No running agent pod matches '{selector}' in namespace {ns}: check 'label_selector'."
        )
    check_agent_pods(alive, ns, settings.agent_container, allow_non_agent)
    alive = serving_pods(cluster, ns, alive)  # with HA replicas: the Lease holders, not standbys
    if serving_sessions:
        serving = _agents_serving_created_sessions(settings)
        alive = [p for p in alive if agent_env_id(p) in serving]
        if not alive:
            raise arguments.ArgumentError(
                "No running agent pod serves the sessions this run created: run create_sessions first, or "
                "drop 'serving_sessions'."
            )
    victims = random.sample(alive, min(max_pods, len(alive)))
    if standbys:
        victims = _standbys_of(cluster, ns, selector, victims) + victims
    hit = record_hit(settings, "kill_agent_pod", victims, cluster.context)
    killed, details = [], []
    for pod in victims:
        container = agent_container_of(pod, settings.agent_container) or settings.agent_container
        if mode == "crash":
            details.append(process.crash(cluster, ns, pod, container, image, start_timeout))
        elif mode == "hang":
            details.append(process.hang(cluster, ns, pod, container, image, duration, start_timeout))
        else:
            try:
                core.delete_namespaced_pod(pod.metadata.name, ns, grace_period_seconds=grace_period)
            except KubeError as exc:
                if exc.status == 404:
                    continue
                raise
        killed.append(pod.metadata.name)
    return {
        "namespace": ns,
        "killed": killed,
        "agent_ids": hit["agent_ids"],
        "grace_period": grace_period,
        "mode": mode,
        "details": details,
    }


def _standbys_of(cluster: Cluster, ns: str, selector: str, leaders: List[Any]) -> List[Any]:
    """The other live replicas sharing a hit HA pod's fixed id (its standbys)."""
    ids = {agent_env_id(p) for p in leaders if agent_env_id(p)}
    names = {p.metadata.name for p in leaders}
    return [
        p
        for p in cluster.core.list_namespaced_pod(ns, label_selector=selector).items
        if pod_alive(p) and p.metadata.name not in names and agent_env_id(p) in ids
    ]


def _agents_serving_created_sessions(settings: Any) -> List[str]:
    from chaosstream.clients.database import query
    from chaosstream.selection import created_sessions

    names = created_sessions()
    if not names:
        return []
    rows = query(settings, "SELECT DISTINCT agent_id FROM sessions WHERE id = ANY(%s)", (names,))
    return [r["agent_id"] for r in rows if r["agent_id"]]


def scale_agents(
    replicas: int,
    namespace: str = None,
    deployment: str = None,
    max_replicas: int = 10,
    duration: float = 600.0,
    allow_non_agent: bool = False,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Dict[str, Any]:
    """Scale the agent Deployment to `replicas` (0 takes every agent away); `replicas=-1` restores.

    The previous replica count is stored in the annotation `chaosstream.io/previous-replicas` and the
    fault's end in `chaosstream.io/expires-at`: `scale_agents(-1)` (the rollback), `chaosstream heal` and
    a detached reaper started here restore it — the reaper after `duration` seconds even if the runner
    was killed. `max_replicas` bounds the blast radius upwards; a Deployment whose pods are not
    StreamSpace agents is refused unless `allow_non_agent=true`.

    Returns `{"namespace", "deployment", "previous_replicas", "replicas", "expires_at"}`.
    """
    settings = resolve_settings(configuration, secrets)
    ns = check_namespace(namespace, settings.namespace)
    name = arguments.text(deployment, "deployment", what="a Deployment name") or settings.agent_deployment
    replicas = arguments.whole(replicas, "replicas", minimum=-1)
    max_replicas = arguments.whole(max_replicas, "max_replicas", minimum=0)
    if replicas > max_replicas:
        raise arguments.ArgumentError(
            f"Argument 'replicas' ({replicas}) exceeds 'max_replicas' ({max_replicas}): raise it."
        )
    duration = arguments.seconds(duration, "duration")
    allow_non_agent = arguments.flag(allow_non_agent, "allow_non_agent")
    cluster = Cluster(secrets, settings.kube_timeout)
    if replicas != -1:
        check_agent_deployment(cluster, ns, name, settings.agent_container, allow_non_agent)
    if replicas == -1:
        dep = cluster.apps.read_namespaced_deployment(name, ns)
        current = dep.spec.replicas if dep.spec.replicas is not None else 1
        restored = scaledown.restore(cluster, ns, name)
        if restored >= 0:
            remember_fault_end("agents restored", time.time(), removed=True)
        # The agents coming back: what a later wait for "online" watches, timed from the restore.
        down = targeted_agents()
        if down and down["action"] == "scale_agents":
            remember_agents(
                "scale_agents_restore",
                down["pods"],
                down["agent_ids"],
                down["per_pod"],
                down["known_ids"],
                utcnow(),
                context=down.get("context", ""),
            )
        return {
            "namespace": ns,
            "deployment": name,
            "previous_replicas": current,
            "replicas": current if restored < 0 else restored,
            "expires_at": None,
        }
    hit = record_hit(
        settings,
        "scale_agents",
        [p for p in _deployment_pods(cluster, ns, name) if pod_alive(p)],
        cluster.context,
    )
    done = scaledown.scale_down(cluster, ns, name, replicas, duration)
    return {
        "namespace": ns,
        "deployment": name,
        "previous_replicas": done["previous_replicas"],
        "replicas": replicas,
        "agent_ids": hit["agent_ids"],
        "expires_at": done["expires_at"],
    }


def approve_agents(
    agent_ids: List[str] = None,
    agent_id_prefix: str = None,
    wait: bool = True,
    timeout: float = 120.0,
    region: str = None,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Dict[str, Any]:
    """Approve agents awaiting approval, as a runbook that approves new agents would
    (`POST /api/v1/admin/agents/{id}/approve`).

    The agents are `agent_ids`, else every `pending` agent whose id starts with `agent_id_prefix`, else every
    `pending` agent that is new since the run's last agent fault (or every pending agent). Every cluster of
    the chart uses the same id prefix, so without `agent_ids` only agents registering with `region` are
    approved, by default the region of the agents the run's last fault hit (never another cluster's
    newcomers). With `wait=true`
    it then waits (bounded by `timeout`) until each approved agent is online with a heartbeat after its
    approval: the approval latency, measured separately from the reconnection (an approved agent only
    connects at its next registration retry, 30 s in StreamSpace).

    Returns `{"approved": [ids], "latency_s": {id: seconds}, "clock": ...}`; nothing pending gives
    `{"approved": []}`. Its inverse is `DELETE /api/v1/admin/agents/{id}` by hand: no rollback needed.
    """
    from chaosstream.clients.streamspace import api_client
    from chaosstream.polling import wait_until
    from chaosstream.selection import targeted_agents
    from chaosstream.timeutil import parse_time

    settings = resolve_settings(configuration, secrets)
    if agent_ids is not None and (
        not isinstance(agent_ids, list) or not all(isinstance(a, str) and a for a in agent_ids)
    ):
        raise arguments.ArgumentError(f"Argument 'agent_ids' must be a list of agent ids, not {agent_ids!r}.")
    prefix = arguments.text(agent_id_prefix, "agent_id_prefix", what="an agent id prefix")
    region = arguments.text(region, "region", what="an agent region")
    timeout = arguments.seconds(timeout, "timeout")
    hit = targeted_agents()
    with api_client(settings, timeout=min(settings.http_timeout, timeout)) as api:
        agents = api.list_agents()
        if agent_ids:
            chosen = list(agent_ids)
        else:
            known = set(hit["known_ids"]) if hit and not prefix else set()
            regions = {region} if region else _regions_hit(agents, hit)
            chosen = [
                str(a.get("agentId"))
                for a in agents
                if a.get("approvalStatus") == "pending"
                and (not prefix or str(a.get("agentId", "")).startswith(prefix))
                and (not regions or a.get("region") in regions)
                and str(a.get("agentId")) not in known
            ]
        approved_at: Dict[str, Any] = {}
        for agent_id in chosen:
            response = api.call("POST", f"/api/v1/admin/agents/{agent_id}/approve", expected=(200, 404))
            if response.status_code == 404 and agent_ids:
                raise arguments.ArgumentError(
                    f"Agent {agent_id} is unknown or not pending approval: check 'agent_ids'."
                )
            if response.status_code == 200:
                approved_at[agent_id] = utcnow()
        latency: Dict[str, float] = {}
        if wait and approved_at:

            def check():
                rows = {str(a.get("agentId")): a for a in api.list_agents()}
                for agent_id, when in approved_at.items():
                    row = rows.get(agent_id) or {}
                    beat = parse_time(row.get("lastHeartbeat"))
                    approved = parse_time(row.get("approvedAt")) or when
                    if (
                        agent_id not in latency
                        and row.get("status") == "online"
                        and beat
                        and beat >= approved
                    ):
                        latency[agent_id] = round((beat - approved).total_seconds(), 3)
                return len(latency) == len(approved_at), latency

            def describe(_last):
                waiting = sorted(set(approved_at) - set(latency))
                return (
                    f"Approved agent(s) {', '.join(waiting)} did not connect within {timeout:g}s of approval."
                )

            wait_until(check, timeout, settings.poll_interval, describe)
    return {
        "approved": sorted(approved_at),
        "latency_s": latency,
        "clock": "control plane (approvedAt to the first lastHeartbeat after it)",
    }


def _regions_hit(agents: List[Dict[str, Any]], hit: Any) -> set:
    """The regions (clusters) of the agents the run's last fault hit, as the control plane lists them."""
    ids = set(hit.get("agent_ids") or []) if hit else set()
    return {a.get("region") for a in agents if a.get("agentId") in ids and a.get("region")}
