"""Which pods and Deployments a fault may hit: StreamSpace agents only, unless the experiment says otherwise.

An agent pod matches the configured agent selector (the chart's agent Deployment selects its pods by the
same labels) and carries the agent container: a container named like the configured agent container, or
one whose env sets `AGENT_ID`, `AGENT_ID_PREFIX` or `CONTROL_PLANE_URL`. Anything else (a user's session
pod, a session Deployment) is refused with one sentence unless the action gets `allow_non_agent: true`.
A selector that selects by absence only (`!key`, `key!=v`, `key notin (...)`) matches every other pod of
the namespace and is refused outright.
"""

import re
from typing import Any, List

from chaoslib.exceptions import ActivityFailed

from chaosstream.clients.kube import Cluster, pod_running

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
]

AGENT_ENV = ("AGENT_ID", "AGENT_ID_PREFIX", "CONTROL_PLANE_URL")

_POSITIVE = re.compile(r"^\s*[A-Za-z0-9_./-]+\s*(?:(?:=|==)\s*\S.*|\s+in\s*\(.*\))?\s*$")


def agent_env_id(pod: Any) -> str:
    """The fixed `AGENT_ID` of a pod's containers (static manifests), or ""."""
    for container in pod.spec.containers or []:
        for env in container.env or []:
            if env.name == "AGENT_ID" and env.value:
                return env.value
    return ""


def agent_id_of(pod: Any, default_prefix: str) -> str:
    """The agent id a pod registers with: its `AGENT_ID` (with `$(VAR)` references expanded from the
    container env and the pod name, as the kubelet does), else `<AGENT_ID_PREFIX>-<pod name>`."""
    for container in pod.spec.containers or []:
        env = {e.name: e.value for e in container.env or [] if e.value is not None}
        env.setdefault("POD_NAME", pod.metadata.name)
        raw = env.get("AGENT_ID")
        if raw:
            return re.sub(
                r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m, env=env: env.get(m.group(1), m.group(0)), raw
            )
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
