"""Partition an agent from the control plane, and heal it (the mechanics live in `chaosstream.faults`)."""

import os
import time
from typing import Any, Dict, List

from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration, Secrets

from chaosstream import arguments
from chaosstream.clients.kube import Cluster, check_namespace
from chaosstream.clients.streamspace import api_client
from chaosstream.faults import ledger, partition, route
from chaosstream.faults.records import RUN_ID
from chaosstream.faults.targets import (
    agent_container_of,
    agent_id_of,
    agent_selector,
    record_hit,
    target_pods,
)
from chaosstream.selection import remember_fault_end
from chaosstream.settings import Settings, resolve_settings

__all__ = ["partition_agent", "heal_agent_partition", "heal_all"]


def _heartbeat_reader(settings: Settings) -> Any:
    """Reads a pod's agent heartbeat from the API (`lastHeartbeat`); None when the API cannot say."""
    api = api_client(settings, timeout=5)

    def read(pod: Any) -> Any:
        agent_id = agent_id_of(pod, os.environ.get("STREAMSPACE_AGENT_ID_PREFIX") or "k8s-prod-cluster")
        try:
            agent = api.get_agent(agent_id)
        except Exception:  # verification must not turn a transient API error into a crash
            return None
        return (agent or {}).get("lastHeartbeat")

    return read


def partition_agent(
    method: str = "ephemeral",
    duration: float = 60.0,
    ports: List[int] = None,
    destinations: List[str] = None,
    agent_id: str = None,
    label_selector: str = None,
    namespace: str = None,
    max_pods: int = 1,
    image: str = None,
    max_duration: float = 3600.0,
    start_timeout: float = 120.0,
    allow_non_agent: bool = False,
    verify: bool = True,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Dict[str, Any]:
    """Cut an agent off from the StreamSpace control plane for `duration` seconds, by `method`
    `ephemeral` (default), `exec` or `network-policy`.

    The cut is on the agent's real route: its `CONTROL_PLANE_URL` (from the pod, else the agent
    Deployment's template), resolved through the Kubernetes API to the Service's ClusterIPs and port
    (what the pod sends with kube-proxy) and its endpoints' addresses and targetPort (what it sends with a
    socket-LB dataplane), IPv4 and IPv6, both directions. Never a bare port: `ports` replaces the route's
    ports on the same addresses, `destinations` (`["10.0.0.5:8000", "[fd00::5]:8000"]`) replaces the route.

    The target is the pod serving `agent_id` (or the agent pods matching `label_selector`, default
    `streamspace_agent_selector`), at most `max_pods` (default 1), in the configured namespace only;
    a pod that is not a StreamSpace agent is refused unless `allow_non_agent=true`.

    Every injection is verified (unless `verify=false`): the route must be unreachable from the pod while
    the kube-apiserver stays reachable (iptables methods), or the agent's heartbeats must stop reaching
    the API (`network-policy`). Otherwise the fault is undone and the action fails with the likely cause.
    `ephemeral` uses `image` (default `STREAMSPACE_PARTITION_IMAGE`, else nicolaka/netshoot:v0.13; pin it by digest in
    air-gapped clusters), pulled `IfNotPresent`, and returns once it runs (`start_timeout` bounds the
    pull); its script carries an absolute deadline, so a late start does nothing. The partition heals
    itself after `duration` even if the runner dies; `heal_agent_partition` (for rollbacks) and
    `heal_all` end it earlier.

    Returns `{{"partition_id", "method", "pods", "route", "destinations", "duration", "expires_at",
    "verified", "verification": [{{"pod", "verified", "how", "injected_at", "verified_at", ...}}],
    "agent_ids"}}`; the agents hit are remembered, so later agent waits of the run watch them.
    """
    settings = resolve_settings(configuration, secrets)
    method = arguments.choice(method, "method", partition.METHODS)
    start_timeout = arguments.seconds(start_timeout, "start_timeout")
    max_duration = arguments.seconds(max_duration, "max_duration")
    if not arguments.is_number(duration) or not 0 < duration <= max_duration:
        raise arguments.ArgumentError(
            f"Argument 'duration' must be between 0 and {max_duration:g} seconds (raise 'max_duration' to allow "
            f"more), not {duration!r}."
        )
    max_pods = arguments.whole(max_pods, "max_pods", minimum=1)
    if image is None:
        image = os.environ.get("STREAMSPACE_PARTITION_IMAGE") or partition.DEFAULT_IMAGE
    if method == "ephemeral":
        image = arguments.text(image, "image", required=True, what="a container image with sh and iptables")
    agent_id = arguments.text(agent_id, "agent_id", what="an agent id")
    allow_non_agent = arguments.flag(allow_non_agent, "allow_non_agent")
    verify = arguments.flag(verify, "verify")
    ns = check_namespace(namespace, settings.namespace)
    selector = agent_selector(label_selector, settings.agent_selector)
    port_override = arguments.port_list(ports) if ports is not None else None
    if destinations is not None and not isinstance(destinations, list):
        raise arguments.ArgumentError(
            f"Argument 'destinations' must be a list of address:port strings, not {destinations!r}."
        )
    dest_override = route.parse_destinations(destinations) if destinations is not None else None
    if dest_override == []:
        raise arguments.ArgumentError("Argument 'destinations' must not be empty.")
    cluster = Cluster(secrets, settings.kube_timeout)
    pods = target_pods(cluster, ns, agent_id, selector, max_pods, settings.agent_container, allow_non_agent)
    container = agent_container_of(pods[0], settings.agent_container) or settings.agent_container
    url = route.control_plane_url(cluster, ns, pods[0], container, settings.agent_deployment)
    real: List[List[Any]] = []
    if dest_override is not None:
        resolved = {
            "url": url or None,
            "service": None,
            "destinations": dest_override,
            "forms": {"override": dest_override},
        }
        if url:
            try:
                real = route.resolve_route(cluster, ns, url)["destinations"]
            except ActivityFailed:
                real = []
    else:
        if not url:
            raise arguments.ArgumentError(
                f"Pod {ns}/{pods[0].metadata.name} has no CONTROL_PLANE_URL (nor does Deployment "
                f"{settings.agent_deployment}): give the route as 'destinations'."
            )
        resolved = route.resolve_route(cluster, ns, url)
        real = list(resolved["destinations"])
        if port_override is not None:
            addresses = sorted({a for a, _ in resolved["destinations"]})
            resolved["destinations"] = [[a, p] for a in addresses for p in port_override]
            resolved["forms"] = {"ports-override": resolved["destinations"]}
    kube_api = route.kube_api_destinations(cluster)
    blocked = {(a, p) for a, p in resolved["destinations"]}
    clash = [f"{a}:{p}" for a, p in kube_api if (a, p) in blocked]
    if clash:
        raise arguments.ArgumentError(
            f"The partition would cut the kube-apiserver ({', '.join(clash)}): check 'destinations' / 'ports'."
        )
    heartbeat = _heartbeat_reader(settings) if method == "network-policy" and verify else None
    window = (
        2 * settings.heartbeat_interval + 1.5
    )  # what the heartbeat verification watches (faults/partition)
    if heartbeat is not None and duration <= window:
        raise arguments.ArgumentError(
            f"Argument 'duration' ({duration:g}s) must outlast the network-policy verification window ({window:g}s, "
            "two heartbeat intervals): raise 'duration', or pass 'verify': false."
        )
    hit = record_hit(settings, "partition_agent", pods, cluster.context)
    result = partition.inject(
        cluster,
        ns,
        pods,
        method,
        resolved,
        duration,
        agent_container_of(pods[0], settings.agent_container) or settings.agent_container,
        image,
        start_timeout,
        kube_api=kube_api,
        probe_route=real,
        heartbeat=heartbeat,
        heartbeat_interval=settings.heartbeat_interval,
        verify=verify,
    )
    result["agent_ids"] = hit["agent_ids"]
    return result


def heal_agent_partition(
    partition_id: str = None,
    any_run: bool = False,
    namespace: str = None,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Dict[str, Any]:
    """End agent partitions made by `partition_agent`: the one with `partition_id`, or every one THIS run
    made (`any_run=true`: every one, whoever made it — another run's fault is otherwise left alone).

    Works from what the partition left in the cluster (pod annotations `chaosstream.io/partition-*`,
    rules tagged `chaosstream-<id>`, NetworkPolicies labelled `app.kubernetes.io/managed-by=chaosstream`),
    so it needs no output of the action and is safe to run twice. Use it in `rollbacks`.

    Returns `{"healed": [what was reverted], "left": [partitions of other runs, with their owner]}`.
    """
    settings = resolve_settings(configuration, secrets)
    partition_id = arguments.text(partition_id, "partition_id", what="a partition id")
    any_run = arguments.flag(any_run, "any_run")
    ns = check_namespace(namespace, settings.namespace)
    cluster = Cluster(secrets, settings.kube_timeout)
    owner = None if (any_run or partition_id) else RUN_ID
    kinds = ("partition", "networkpolicy")
    healed = ledger.heal(cluster, ns, partition_id, kinds=kinds, owner=owner)
    if healed:
        remember_fault_end("partition healed", time.time(), removed=True)
    left = []
    if owner is not None:
        left = [
            f"{f.kind} {f.fault_id} on {ns}/{f.target} (run {f.owner or 'unknown'})"
            for f in ledger.list_faults(cluster, ns, kinds=kinds)
            if f.kind in kinds and f.owner != owner
        ]
    return {"healed": list(healed), "left": left}


def heal_all(
    namespace: str = None,
    expired_only: bool = False,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Dict[str, Any]:
    """Remove every leftover chaosstream fault in the namespace: partitions of all methods, agent
    Deployments still scaled down by `scale_agents` (restored to the recorded replica count), and the
    sessions runs recorded with `create_sessions` (terminated through the API, then their record removed).
    With `expired_only=true` only faults past their `expires-at` are removed (the scheduled reaper's mode).

    Each fault is undone on its own: one that fails is reported, the others are still healed.
    Returns `{"healed": [what was reverted, with the run that made it], "left": [session records left
    because no StreamSpace credentials are configured], "refused": [recorded sessions left running because
    they were created before their record, so no run made them]}`.
    """
    settings = resolve_settings(configuration, secrets)
    expired_only = arguments.flag(expired_only, "expired_only")
    ns = check_namespace(namespace, settings.namespace)
    cluster = Cluster(secrets, settings.kube_timeout)
    report = ledger.heal(cluster, ns, None, expired_only=expired_only, settings=settings)
    return {"healed": list(report), "left": report.left, "refused": report.refused}
