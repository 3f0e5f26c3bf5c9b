"""Partition an agent from the control plane, and heal it (the mechanics live in `chaosstream.faults`)."""

from typing import Any, Dict, List
from urllib.parse import urlsplit

from chaoslib.types import Configuration, Secrets

from chaosstream import arguments
from chaosstream.clients.kube import Cluster, check_namespace
from chaosstream.faults import ledger, partition
from chaosstream.faults.records import RUN_ID
from chaosstream.faults.targets import agent_selector, record_hit, target_pods
from chaosstream.settings import Settings, resolve_settings

__all__ = ["partition_agent", "heal_agent_partition", "heal_all"]


def _api_ports(settings: Settings) -> List[int]:
    parts = urlsplit(settings.api_url)
    return [parts.port or (443 if parts.scheme == "https" else 80)]


def partition_agent(
    method: str = "ephemeral",
    duration: float = 60.0,
    ports: List[int] = None,
    agent_id: str = None,
    label_selector: str = None,
    namespace: str = None,
    max_pods: int = 1,
    image: str = partition.DEFAULT_IMAGE,
    max_duration: float = 3600.0,
    start_timeout: float = 120.0,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Dict[str, Any]:
    """Cut an agent off from the StreamSpace API for `duration` seconds (TCP `ports`, default the port of
    `streamspace_api_url`), by `method` `ephemeral` (default), `exec` or `network-policy`.

    The target is the pod serving `agent_id` (or the agent pods matching `label_selector`, default
    `streamspace_agent_selector`), at most `max_pods` (default 1), in the configured namespace only.
    For `ephemeral` it returns once the container runs (`start_timeout` bounds the image pull). The
    partition heals itself after `duration` even if the runner dies; `heal_agent_partition` (for
    rollbacks) and `heal_all` end it earlier.

    Returns `{"partition_id", "method", "pods", "agent_ids", "ports", "duration", "expires_at"}`; the
    agents hit are remembered, so later agent waits of the run watch them.
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
    if method == "ephemeral":
        image = arguments.text(image, "image", required=True, what="a container image with sh and iptables")
    agent_id = arguments.text(agent_id, "agent_id", what="an agent id")
    ns = check_namespace(namespace, settings.namespace)
    selector = agent_selector(label_selector, settings.agent_selector)
    ports = arguments.port_list(ports if ports is not None else _api_ports(settings))
    cluster = Cluster(secrets, settings.kube_timeout)
    pods = target_pods(cluster, ns, agent_id, selector, max_pods)
    hit = record_hit(settings, "partition_agent", pods)
    result = partition.inject(
        cluster, ns, pods, method, ports, duration, settings.agent_container, image, start_timeout
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
    left = []
    if owner is not None:
        left = [
            f"{f.kind} {f.fault_id} on {ns}/{f.target} (run {f.owner or 'unknown'})"
            for f in ledger.list_faults(cluster, ns)
            if f.kind in kinds and f.owner != owner
        ]
    return {"healed": healed, "left": left}


def heal_all(
    namespace: str = None,
    expired_only: bool = False,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Dict[str, Any]:
    """Remove every leftover chaosstream fault in the namespace: partitions of all methods and agent
    Deployments still scaled down by `scale_agents` (restored to the recorded replica count). With
    `expired_only=true` only faults past their `expires-at` are removed (the scheduled reaper's mode).

    Each fault is undone on its own: one that fails is reported, the others are still healed.
    Returns `{"healed": [what was reverted]}`.
    """
    settings = resolve_settings(configuration, secrets)
    expired_only = arguments.flag(expired_only, "expired_only")
    ns = check_namespace(namespace, settings.namespace)
    return {
        "healed": ledger.heal(Cluster(secrets, settings.kube_timeout), ns, None, expired_only=expired_only)
    }
