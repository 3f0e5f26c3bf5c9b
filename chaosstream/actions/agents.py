"""Actions on the agent Deployment: rollout restart, pod kills, scaling — each with its inverse."""

import random
from typing import Any, Dict

from chaoslib.types import Configuration, Secrets

from chaosstream import arguments
from chaosstream.clients.kube import Cluster, KubeError, check_namespace, pod_alive
from chaosstream.clients.rollout import agent_pods, wait_for_rollout
from chaosstream.faults import scaledown
from chaosstream.faults.targets import agent_selector, check_agent_deployment, check_agent_pods
from chaosstream.settings import resolve_settings
from chaosstream.timeutil import iso, utcnow

__all__ = ["restart_agent", "kill_agent_pod", "scale_agents"]

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

    Returns `{"namespace", "deployment", "restartedAt", "previous_pods": [...], "rollout": {...} | null}`.
    Its own inverse: the Deployment's controller restores the pods; nothing to roll back.
    """
    settings = resolve_settings(configuration, secrets)
    ns = check_namespace(namespace, settings.namespace)
    name = arguments.text(deployment, "deployment", what="a Deployment name") or settings.agent_deployment
    timeout = arguments.seconds(timeout, "timeout")
    allow_non_agent = arguments.flag(allow_non_agent, "allow_non_agent")
    cluster = Cluster(secrets)
    check_agent_deployment(cluster, ns, name, settings.agent_container, allow_non_agent)
    before = [p.metadata.name for p in agent_pods(settings, secrets)]
    now = iso(utcnow())
    body = {"spec": {"template": {"metadata": {"annotations": {RESTART_ANNOTATION: now}}}}}
    cluster.apps.patch_namespaced_deployment(name, ns, body)
    rollout = wait_for_rollout(settings, secrets, timeout, settings.poll_interval) if wait else None
    return {
        "namespace": ns,
        "deployment": name,
        "restartedAt": now,
        "previous_pods": before,
        "rollout": rollout,
    }


def kill_agent_pod(
    grace_period: int = 0,
    max_pods: int = 1,
    namespace: str = None,
    label_selector: str = None,
    allow_non_agent: bool = False,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Dict[str, Any]:
    """Delete agent pods (`kubectl delete pod`), at most `max_pods` (default 1), chosen at random among
    running agent pods matching `label_selector` (default: `streamspace_agent_selector`).

    This is an API deletion: the kubelet sends SIGTERM first and floors the grace period at 2 s (so
    `grace_period=0` still lets the agent close its WebSocket cleanly; it is not a crash). Pods that
    are not StreamSpace agents are refused unless `allow_non_agent=true`. The Deployment replaces the
    pods; no rollback is needed.

    Returns `{"namespace", "killed": [pod names], "grace_period"}`.
    """
    settings = resolve_settings(configuration, secrets)
    ns = check_namespace(namespace, settings.namespace)
    selector = agent_selector(label_selector, settings.agent_selector)
    max_pods = arguments.whole(max_pods, "max_pods", minimum=1)
    grace_period = arguments.whole(grace_period, "grace_period", minimum=0)
    allow_non_agent = arguments.flag(allow_non_agent, "allow_non_agent")
    core = Cluster(secrets).core
    alive = [p for p in core.list_namespaced_pod(ns, label_selector=selector).items if pod_alive(p)]
    if not alive:
        raise arguments.ArgumentError(
            f"No running agent pod matches '{selector}' in namespace {ns}: check 'label_selector'."
        )
    check_agent_pods(alive, ns, settings.agent_container, allow_non_agent)
    victims = random.sample(alive, min(max_pods, len(alive)))
    killed = []
    for pod in victims:
        try:
            core.delete_namespaced_pod(pod.metadata.name, ns, grace_period_seconds=grace_period)
        except KubeError as exc:
            if exc.status == 404:
                continue
            raise
        killed.append(pod.metadata.name)
    return {"namespace": ns, "killed": killed, "grace_period": grace_period}


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
    cluster = Cluster(secrets)
    if replicas != -1:
        check_agent_deployment(cluster, ns, name, settings.agent_container, allow_non_agent)
    if replicas == -1:
        dep = cluster.apps.read_namespaced_deployment(name, ns)
        current = dep.spec.replicas if dep.spec.replicas is not None else 1
        restored = scaledown.restore(cluster, ns, name)
        return {
            "namespace": ns,
            "deployment": name,
            "previous_replicas": current,
            "replicas": current if restored < 0 else restored,
            "expires_at": None,
        }
    done = scaledown.scale_down(cluster, ns, name, replicas, duration)
    return {
        "namespace": ns,
        "deployment": name,
        "previous_replicas": done["previous_replicas"],
        "replicas": replicas,
        "expires_at": done["expires_at"],
    }
