"""Which pods and Deployments a fault may hit: StreamSpace agents only, unless the experiment says otherwise.

An agent pod matches the configured agent selector (the chart's agent Deployment selects its pods by the
same labels) and carries the agent container: a container named like the configured agent container, or
one whose env sets `AGENT_ID`, `AGENT_ID_PREFIX` or `CONTROL_PLANE_URL`. Anything else (a user's session
pod, a session Deployment) is refused with one sentence unless the action gets `allow_non_agent: true`.
A selector that selects by absence only (`!key`, `key!=v`, `key notin (...)`) matches every other pod of
the namespace and is refused outright.
"""

import re
from typing import Any, Dict, List

from chaoslib.exceptions import ActivityFailed

from chaosstream.clients.kube import Cluster, KubeError, pod_ready, pod_running
from chaosstream.clients.streamspace import api_client
from chaosstream.selection import remember_agents
from chaosstream.settings import Settings
from chaosstream.timeutil import iso, utcnow

_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def _expand(value: str, known: Dict[str, str]) -> str:
    """`$(VAR)` as the kubelet expands it: earlier env entries only, unknown references kept, `$$` → `$`."""

    def one(match: "re.Match[str]") -> str:
        if match.group(0) == "$$":
            return "$"
        return known.get(match.group(1), match.group(0))

    return _REF.sub(one, value)


__all__ = [
    "AGENT_ENV",
    "agent_env_id",
    "agent_id_of",
    "agent_selector",
    "is_agent_container",
    "agent_container_of",
    "is_agent_pod",
    "check_agent_pods",
    "check_agent_deployment",
    "target_pods",
    "id_is_per_pod",
    "record_hit",
    "serving_pods",
    "ha_standbys",
]

AGENT_ENV = ("AGENT_ID", "AGENT_ID_PREFIX", "CONTROL_PLANE_URL")

_POSITIVE = re.compile(r"^\s*[A-Za-z0-9_./-]+\s*(?:(?:=|==)\s*\S.*|\s+in\s*\(.*\))?\s*$")


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


def agent_id_of(pod: Any, default_prefix: str) -> str:
    """The agent id a pod registers with: its `AGENT_ID` as the kubelet expands it (`agent_env_id`), else
    `<AGENT_ID_PREFIX>-<pod name>` (the agent's own default)."""
    found = agent_env_id(pod)
    if found:
        return found
    for container in pod.spec.containers or []:
        env = {e.name: e.value for e in container.env or [] if e.value is not None}
        prefix = env.get("AGENT_ID_PREFIX") or env.get("SANDBOX_AGENT_ID_PREFIX")
        if prefix:
            return f"{prefix}-{pod.metadata.name}"
    return f"{default_prefix}-{pod.metadata.name}"


def _positive_terms(selector: str) -> List[str]:
    """The requirements of `selector` that need a label to be present (depth-aware split on commas)."""
    terms, depth, current = [], 0, ""
    for char in selector:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += char
    terms.append(current)
    return [t for t in terms if t.strip() and "!" not in t and " notin " not in t and _POSITIVE.match(t)]


def agent_selector(label_selector: Any, default: str) -> str:
    """The selector to use: the argument, else the configured agent selector; never empty, never one that
    selects by absence only (it would match every pod)."""
    if label_selector is not None and not isinstance(label_selector, str):
        raise ActivityFailed(
            f"Argument 'label_selector' must be a label selector string, not {label_selector!r}."
        )
    selector = default if label_selector is None else label_selector.strip()
    if not selector:
        raise ActivityFailed(
            "Argument 'label_selector' must not be empty: it would select every pod in the namespace."
        )
    if not _positive_terms(selector):
        raise ActivityFailed(
            f"Argument 'label_selector' ('{selector}') selects by absence only, so it matches every other pod "
            "in the namespace: name a label the agent pods carry."
        )
    return selector


def is_agent_container(container: Any, name: str) -> bool:
    """The agent container: named `name`, or with an agent env variable."""
    if getattr(container, "name", None) == name:
        return True
    return any(getattr(env, "name", None) in AGENT_ENV for env in getattr(container, "env", None) or [])


def agent_container_of(pod: Any, name: str) -> str:
    """The name of the pod's agent container (`name` when present), or ""."""
    containers = list(pod.spec.containers or [])
    if any(c.name == name for c in containers):
        return name
    for container in containers:
        if is_agent_container(container, name):
            return container.name
    return ""


def is_agent_pod(pod: Any, container: str) -> bool:
    return bool(agent_container_of(pod, container))


def check_agent_pods(pods: List[Any], ns: str, container: str, allow_non_agent: bool) -> None:
    """Refuse (one sentence) when one of `pods` is not a StreamSpace agent pod."""
    if allow_non_agent:
        return
    others = [p.metadata.name for p in pods if not is_agent_pod(p, container)]
    if others:
        raise ActivityFailed(
            f"Pod {ns}/{others[0]} is not a StreamSpace agent pod (no container '{container}' and no AGENT_ID, "
            "AGENT_ID_PREFIX or CONTROL_PLANE_URL in its env): fix 'label_selector', or set "
            "'allow_non_agent' to true to hit it anyway."
        )


def check_agent_deployment(
    cluster: Cluster, ns: str, name: str, container: str, allow_non_agent: bool
) -> Any:
    """Read Deployment `name`; refuse (one sentence) when its pods would not be StreamSpace agents."""
    dep = cluster.apps.read_namespaced_deployment(name, ns)
    if allow_non_agent:
        return dep
    template = dep.spec.template
    containers = list((template.spec.containers if template and template.spec else None) or [])
    if not any(is_agent_container(c, container) for c in containers):
        raise ActivityFailed(
            f"Deployment {ns}/{name} is not the StreamSpace agent (its pods have no container '{container}' and "
            "no AGENT_ID, AGENT_ID_PREFIX or CONTROL_PLANE_URL in their env): fix 'deployment', or set "
            "'allow_non_agent' to true to act on it anyway."
        )
    return dep


def target_pods(
    cluster: Cluster,
    ns: str,
    agent_id: str,
    selector: str,
    max_pods: int,
    container: str = "k8s-agent",
    allow_non_agent: bool = False,
) -> List[Any]:
    """Running pods matching `selector` (and serving `agent_id` if given), at most `max_pods`; refuses
    non-agent pods unless `allow_non_agent`."""
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
    check_agent_pods(pods, ns, container, allow_non_agent)
    return pods[:max_pods]


def serving_pods(cluster: Cluster, ns: str, pods: List[Any]) -> List[Any]:
    """The pods that serve their agent id: with HA replicas sharing one fixed id (ENABLE_HA=true), only
    the holder of Lease `streamspace-agent-<AGENT_ID>` (identity POD_NAME) serves; standbys do not
    (agents/k8s-agent/internal/leaderelection/leader_election.go). Other pods are kept as they are; with no
    Lease yet (no leader) every replica is kept; a Lease the runner may not read is refused with one sentence
    rather than guessing (a standby hit would test nothing)."""
    by_id: Dict[str, List[Any]] = {}
    for pod in pods:
        by_id.setdefault(agent_env_id(pod), []).append(pod)
    out: List[Any] = []
    for agent_id, group in by_id.items():
        if not agent_id or len(group) == 1 and not _ha(group[0]):
            out.extend(group)
            continue
        try:
            lease = _ha_lease(cluster, ns, agent_id)
        except KubeError:
            lease = None  # unreadable for another reason: keep every replica
        holder = (lease.spec.holder_identity or "") if lease is not None and lease.spec else ""
        leaders = [p for p in group if p.metadata.name == holder]
        out.extend(leaders or group)
    return out


def ha_standbys(cluster: Cluster, ns: str, selector: str) -> Dict[str, int]:
    """Ready standbys per HA agent id: what HA provides in place of more agents. Replicas sharing one
    fixed AGENT_ID with ENABLE_HA=true elect a leader through Lease `streamspace-agent-<AGENT_ID>`
    (identity POD_NAME; agents/k8s-agent/internal/leaderelection/leader_election.go) and only the leader
    connects; an id counts its ready non-leader replicas only while a ready pod of its own holds that Lease,
    renewed within two lease durations (a dead leader's stale record is not a leader)."""
    import datetime as dt

    groups: Dict[str, List[Any]] = {}
    for pod in cluster.core.list_namespaced_pod(ns, label_selector=selector).items:
        if pod_ready(pod) and _ha(pod) and agent_env_id(pod):
            groups.setdefault(agent_env_id(pod), []).append(pod)
    out: Dict[str, int] = {}
    for agent_id, group in groups.items():
        lease = _ha_lease(cluster, ns, agent_id)
        if lease is None:
            continue  # no leader yet
        spec = lease.spec
        holder = (spec.holder_identity or "") if spec else ""
        if holder not in {p.metadata.name for p in group}:
            continue
        renewed = spec.renew_time
        if renewed is not None and renewed.tzinfo is None:
            renewed = renewed.replace(tzinfo=dt.UTC)
        window = 2 * float(spec.lease_duration_seconds or 15)
        if renewed is not None and (dt.datetime.now(dt.UTC) - renewed).total_seconds() > window:
            continue
        out[agent_id] = len(group) - 1
    return out


def _ha_lease(cluster: Cluster, ns: str, agent_id: str) -> Any:
    """Lease `streamspace-agent-<agent_id>` (None when there is none yet). A refusal is one sentence naming
    the grant: guessing the leader would hit a standby and test nothing."""
    name = f"streamspace-agent-{agent_id}"
    try:
        return cluster.coordination.read_namespaced_lease(name, ns)
    except KubeError as exc:
        if exc.status in (401, 403):
            raise ActivityFailed(
                f"Cannot tell which replica of HA agent {agent_id} leads: Kubernetes answered {exc.status} to "
                f"reading Lease {ns}/{name}; grant the runner get on leases (deploy/kubernetes/rbac.yaml)."
            ) from None
        if exc.status == 404:
            return None
        raise


def _ha(pod: Any) -> bool:
    for container in pod.spec.containers or []:
        for env in container.env or []:
            if env.name == "ENABLE_HA" and (env.value or "").lower() == "true":
                return True
    return False


def record_hit(settings: Settings, action: str, pods: List[Any], context: str = "") -> Dict[str, Any]:
    """Remember in the run's memory which agents (ids and pods) `action` is about to hit, with the agent
    ids the control plane knows now and the kube `context` they are in; call it just before the fault.
    Returns what the action reports."""
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
    remember_agents(action, [p.metadata.name for p in pods], ids, per_pod, known, now, beats, context)
    return {
        "pods": [p.metadata.name for p in pods],
        "agent_ids": [i for i in ids if i],
        "ids": "per-pod" if per_pod else "fixed",
        "at": iso(now),
    }
