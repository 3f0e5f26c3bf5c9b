"""Which pods a fault may hit: agent pods only, chosen by the configured selector or by agent id."""

from typing import Any, List

from chaoslib.exceptions import ActivityFailed

from chaosstream.clients.kube import Cluster, pod_running

__all__ = ["agent_env_id", "agent_selector", "target_pods"]


def agent_env_id(pod: Any) -> str:
    """The fixed `AGENT_ID` of a pod's containers (static manifests), or ""."""
    for container in pod.spec.containers or []:
        for env in container.env or []:
            if env.name == "AGENT_ID" and env.value:
                return env.value
    return ""


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
