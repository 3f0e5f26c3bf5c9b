"""Which pods a fault may hit: agent pods only, chosen by the configured selector or by agent id."""

import re
from typing import Any, Dict, List

from chaoslib.exceptions import ActivityFailed

from chaosstream.clients.kube import Cluster, KubeError, pod_running
from chaosstream.clients.streamspace import api_client
from chaosstream.selection import remember_agents
from chaosstream.settings import Settings
from chaosstream.timeutil import iso, utcnow

__all__ = ["agent_env_id", "id_is_per_pod", "agent_selector", "target_pods", "record_hit", "serving_pods"]


_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def _expand(value: str, known: Dict[str, str]) -> str:
    """`$(VAR)` as the kubelet expands it: earlier env entries only, unknown references kept, `$$` → `$`."""

    def one(match: "re.Match[str]") -> str:
        if match.group(0) == "$$":
            return "$"
        return known.get(match.group(1), match.group(0))

    return _REF.sub(one, value)


def agent_env_id(pod: Any) -> str:
    """The agent id a pod's container env gives, as the kubelet resolves it: a fixed `AGENT_ID` (static
    manifests) or the chart's `$(AGENT_ID_PREFIX)-$(POD_NAME)` with POD_NAME from the downward API; ""
    when the env does not say (e.g. the id comes from a ConfigMap)."""
    fields = {"metadata.name": pod.metadata.name or "", "metadata.namespace": pod.metadata.namespace or ""}
    for container in pod.spec.containers or []:
        known: Dict[str, str] = {}
        for env in container.env or []:
            if env.value is not None:
                known[env.name] = _expand(env.value, known)
            elif env.value_from is not None and env.value_from.field_ref is not None:
                path = env.value_from.field_ref.field_path
                if path in fields:
                    known[env.name] = fields[path]
        agent_id = known.get("AGENT_ID", "")
        if agent_id and "$(" not in agent_id:
            return agent_id
    return ""


def id_is_per_pod(agent_id: str, pod_name: str) -> bool:
    """True when the id names the pod (`<prefix>-<pod name>`, the chart's ids): a new pod is a new agent."""
    return bool(agent_id) and agent_id.endswith("-" + pod_name)


def agent_selector(label_selector: Any, default: str) -> str:
    """The selector to use: the argument, else the configured agent selector; never empty."""
    if label_selector is not None and not isinstance(label_selector, str):
        raise ActivityFailed(
            f"Argument 'label_selector' must be a label selector string, not {label_selector!r}."
        )
    selector = default if label_selector is None else label_selector.strip()
    if not selector:
        raise ActivityFailed(
            "Argument 'label_selector' must not be empty: it would select every pod in the namespace."
        )
    return selector


def target_pods(cluster: Cluster, ns: str, agent_id: str, selector: str, max_pods: int) -> List[Any]:
    """Running pods matching `selector` (and serving `agent_id` if given), at most `max_pods`."""
    pods = [p for p in cluster.core.list_namespaced_pod(ns, label_selector=selector).items if pod_running(p)]
    pods = serving_pods(cluster, ns, pods)  # with HA replicas: the Lease holders
    if agent_id:
        # The chart names agents <prefix>-<pod name>; static manifests set AGENT_ID in the env.
        pods = [p for p in pods if agent_env_id(p) == agent_id or agent_id.endswith("-" + p.metadata.name)]
        if not pods:
            raise ActivityFailed(
                f"No running agent pod serves agent {agent_id!r} in {ns} (selector '{selector}'): check 'agent_id'."
            )
    if not pods:
        raise ActivityFailed(
            f"No running agent pod matches '{selector}' in namespace {ns}: check 'label_selector'."
        )
    return pods[:max_pods]


def serving_pods(cluster: Cluster, ns: str, pods: List[Any]) -> List[Any]:
    """The pods that serve their agent id: with HA replicas sharing one fixed id (ENABLE_HA=true), only
    the holder of Lease `streamspace-agent-<AGENT_ID>` (identity POD_NAME) serves; standbys do not
    (agents/k8s-agent/internal/leaderelection/leader_election.go). Other pods are kept as they are; when
    the Lease cannot be read every replica is kept."""
    by_id: Dict[str, List[Any]] = {}
    for pod in pods:
        by_id.setdefault(agent_env_id(pod), []).append(pod)
    out: List[Any] = []
    for agent_id, group in by_id.items():
        if not agent_id or len(group) == 1 and not _ha(group[0]):
            out.extend(group)
            continue
        try:
            lease = cluster.coordination.read_namespaced_lease(f"streamspace-agent-{agent_id}", ns)
            holder = (lease.spec.holder_identity or "") if lease.spec else ""
        except KubeError:
            holder = ""
        leaders = [p for p in group if p.metadata.name == holder]
        out.extend(leaders or group)
    return out


def _ha(pod: Any) -> bool:
    for container in pod.spec.containers or []:
        for env in container.env or []:
            if env.name == "ENABLE_HA" and (env.value or "").lower() == "true":
                return True
    return False


def record_hit(settings: Settings, action: str, pods: List[Any]) -> Dict[str, Any]:
    """Remember in the run's memory which agents (ids and pods) `action` is about to hit, with the agent
    ids the control plane knows now; call it just before the fault. Returns what the action reports."""
    ids = [agent_env_id(p) for p in pods]
    per_pod = any(id_is_per_pod(i, p.metadata.name) for i, p in zip(ids, pods, strict=True))
    beats: Dict[str, str] = {}
    try:
        with api_client(settings, timeout=settings.http_timeout) as api:
            agents = api.list_agents()
        known = [str(a.get("agentId")) for a in agents]
        beats = {str(a.get("agentId")): a.get("lastHeartbeat") for a in agents if a.get("agentId") in ids}
    except ActivityFailed:  # the fault still runs; a replacement is then "an id not served by these pods"
        known = [i for i in ids if i]
    now = utcnow()
    remember_agents(action, [p.metadata.name for p in pods], ids, per_pod, known, now, beats)
    return {
        "pods": [p.metadata.name for p in pods],
        "agent_ids": [i for i in ids if i],
        "ids": "per-pod" if per_pod else "fixed",
        "at": iso(now),
    }
