"""Rollout state of the agent Deployment, the way `kubectl rollout status` judges it."""

import time
from typing import Any, Dict, List, Mapping, Optional, Tuple

from chaoslib.exceptions import ActivityFailed

from chaosstream.clients.kube import Cluster
from chaosstream.polling import wait_until
from chaosstream.settings import Settings
from chaosstream.timeutil import iso, utcnow

__all__ = ["rollout_state", "wait_for_rollout", "agent_pods"]


def agent_pods(settings: Settings, secrets: Optional[Mapping[str, Any]]) -> List[Any]:
    """The pods the agent selector matches, terminating ones included."""
    return (
        Cluster(secrets, settings.kube_timeout)
        .core.list_namespaced_pod(settings.namespace, label_selector=settings.agent_selector)
        .items
    )


def rollout_state(settings: Settings, secrets: Optional[Mapping[str, Any]]) -> Tuple[bool, Dict[str, Any]]:
    """(complete?, details) for the agent Deployment; complete also means no old pod is still terminating."""
    name = settings.agent_deployment
    dep = Cluster(secrets, settings.kube_timeout).apps.read_namespaced_deployment(name, settings.namespace)
    want = dep.spec.replicas if dep.spec.replicas is not None else 1
    st = dep.status
    pods = agent_pods(settings, secrets)
    terminating = [p.metadata.name for p in pods if p.metadata.deletion_timestamp is not None]
    details = {
        "deployment": name,
        "replicas": want,
        "updatedReplicas": st.updated_replicas or 0,
        "readyReplicas": st.ready_replicas or 0,
        "availableReplicas": st.available_replicas or 0,
        "statusReplicas": st.replicas or 0,
        "observedGeneration": st.observed_generation or 0,
        "generation": dep.metadata.generation or 0,
        "terminating": terminating,
    }
    complete = (
        details["observedGeneration"] >= details["generation"]
        and details["updatedReplicas"] == want
        and details["statusReplicas"] == want
        and details["availableReplicas"] == want
        and not terminating
    )
    return complete, details


def wait_for_rollout(
    settings: Settings, secrets: Optional[Mapping[str, Any]], timeout: float, interval: float
) -> Dict[str, Any]:
    started = time.monotonic()

    def describe(last: Optional[Dict[str, Any]]) -> str:
        return (
            f"The rollout of Deployment {settings.namespace}/{settings.agent_deployment} did not finish within "
            f"{timeout:g}s (last status: {last})."
        )

    details, _, _ = wait_until(
        lambda: rollout_state(settings, secrets),
        timeout,
        interval,
        describe,
        lambda last: (
            f"rollout of {settings.namespace}/{settings.agent_deployment} to complete; status {last}"
        ),
    )
    if details is None:  # pragma: no cover - wait_until returns a value or raises
        raise ActivityFailed("rollout state unavailable")
    details["completed_at"] = iso(utcnow())
    details["elapsed_s"] = round(time.monotonic() - started, 3)
    return details
