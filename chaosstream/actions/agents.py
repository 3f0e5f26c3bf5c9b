"""Actions on the agent Deployment: rollout restart, pod kills, scaling — each with its inverse."""

import datetime
import random
import time
from typing import Any, Dict

from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration, Secrets

from chaosstream.kube import apps_api, check_namespace, core_api, k8s_error
from chaosstream.polling import check_timeout
from chaosstream.rollout import agent_pods, wait_for_rollout
from chaosstream.settings import resolve_settings
from chaosstream.timeutil import iso, utcnow

__all__ = ["restart_agent", "kill_agent_pod", "scale_agents"]

RESTART_ANNOTATION = "kubectl.kubernetes.io/restartedAt"
PREVIOUS_REPLICAS_ANNOTATION = "chaosstream.io/previous-replicas"
EXPIRES_ANNOTATION = "chaosstream.io/expires-at"


def restart_agent(
    namespace: str = None,
    deployment: str = None,
    wait: bool = False,
    timeout: float = 120.0,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Dict[str, Any]:
    """Rollout-restart the StreamSpace agent Deployment (what `kubectl rollout restart` does).

    Sets the pod-template annotation `kubectl.kubernetes.io/restartedAt` to now, so Kubernetes replaces
    every agent pod. `namespace` and `deployment` default to the configured `streamspace_namespace` and
    `streamspace_agent_deployment`; another namespace is refused. With `wait=true` it returns after the
    rollout finished (bounded by `timeout`).

    Returns `{"namespace", "deployment", "restartedAt", "previous_pods": [...], "rollout": {...} | null}`.
    Its own inverse: the Deployment's controller restores the pods; nothing to roll back.
    """
    settings = resolve_settings(configuration, secrets)
    ns = check_namespace(namespace, settings.namespace)
    name = deployment or settings.agent_deployment
    timeout = check_timeout(timeout)
    before = [p.metadata.name for p in agent_pods(settings, secrets)]
    now = iso(utcnow())
    body = {"spec": {"template": {"metadata": {"annotations": {RESTART_ANNOTATION: now}}}}}
    try:
        apps_api(secrets).patch_namespaced_deployment(name, ns, body)
    except Exception as exc:
        raise k8s_error(exc, f"Deployment {ns}/{name}") from None
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
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Dict[str, Any]:
    """Delete agent pods (`kubectl delete pod`), at most `max_pods` (default 1), chosen at random among
    running agent pods matching `label_selector` (default: `streamspace_agent_selector`).

    `grace_period=0` kills at once (SIGKILL, as a node failure would). The Deployment replaces the pods;
    no rollback is needed.

    Returns `{"namespace", "killed": [pod names], "grace_period"}`.
    """
    settings = resolve_settings(configuration, secrets)
    ns = check_namespace(namespace, settings.namespace)
    if label_selector is not None and not isinstance(label_selector, str):
        raise ActivityFailed(
            f"Argument 'label_selector' must be a label selector string, not {label_selector!r}."
        )
    selector = settings.agent_selector if label_selector is None else label_selector.strip()
    if not selector:
        raise ActivityFailed(
            "Argument 'label_selector' must not be empty: it would select every pod in the namespace."
        )
    if isinstance(max_pods, bool) or not isinstance(max_pods, int) or max_pods < 1:
        raise ActivityFailed(f"Argument 'max_pods' must be a whole number ≥ 1, not {max_pods!r}.")
    if isinstance(grace_period, bool) or not isinstance(grace_period, int) or grace_period < 0:
        raise ActivityFailed(f"Argument 'grace_period' must be whole seconds ≥ 0, not {grace_period!r}.")
    api = core_api(secrets)
    try:
        pods = api.list_namespaced_pod(ns, label_selector=selector).items
    except Exception as exc:
        raise k8s_error(exc, f"pods '{selector}' in {ns}") from None
    alive = [p for p in pods if p.metadata.deletion_timestamp is None]
    if not alive:
        raise ActivityFailed(
            f"No running agent pod matches '{selector}' in namespace {ns}: check 'label_selector'."
        )
    victims = random.sample(alive, min(max_pods, len(alive)))
    killed = []
    for pod in victims:
        try:
            api.delete_namespaced_pod(pod.metadata.name, ns, grace_period_seconds=grace_period)
        except Exception as exc:
            if getattr(exc, "status", None) == 404:
                continue
            raise k8s_error(exc, f"pod {ns}/{pod.metadata.name}") from None
        killed.append(pod.metadata.name)
    return {"namespace": ns, "killed": killed, "grace_period": grace_period}


def restore_replicas(
    namespace: str, deployment: str, secrets: Secrets = None, only_if_expires: str = None
) -> int:
    """Put back the replica count `scale_agents` saved; returns the count (or -1 when nothing was saved).

    `only_if_expires` makes it a no-op unless the expiry annotation still has that value (the reaper
    must not undo a newer scale-down)."""
    apps = apps_api(secrets)
    dep = apps.read_namespaced_deployment(deployment, namespace)
    annotations = dict(dep.metadata.annotations or {})
    saved = annotations.get(PREVIOUS_REPLICAS_ANNOTATION)
    if saved is None:
        return -1
    if only_if_expires is not None and annotations.get(EXPIRES_ANNOTATION) != only_if_expires:
        return -1
    patch = {
        "metadata": {"annotations": {PREVIOUS_REPLICAS_ANNOTATION: None, EXPIRES_ANNOTATION: None}},
        "spec": {"replicas": int(saved)},
    }
    apps.patch_namespaced_deployment(deployment, namespace, patch)
    return int(saved)


def scale_agents(
    replicas: int,
    namespace: str = None,
    deployment: str = None,
    max_replicas: int = 10,
    duration: float = 600.0,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Dict[str, Any]:
    """Scale the agent Deployment to `replicas` (0 takes every agent away); `replicas=-1` restores.

    The previous replica count is stored in the annotation `chaosstream.io/previous-replicas` and the
    fault's end in `chaosstream.io/expires-at`: `scale_agents(-1)` (the rollback), `chaosstream heal` and
    a detached reaper started here restore it — the reaper after `duration` seconds even if the runner
    was killed. `max_replicas` bounds the blast radius upwards.

    Returns `{"namespace", "deployment", "previous_replicas", "replicas", "expires_at"}`.
    """
    settings = resolve_settings(configuration, secrets)
    ns = check_namespace(namespace, settings.namespace)
    name = deployment or settings.agent_deployment
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < -1:
        raise ActivityFailed(
            f"Argument 'replicas' must be a whole number ≥ 0 (or -1 to restore), not {replicas!r}."
        )
    if isinstance(max_replicas, bool) or not isinstance(max_replicas, int) or max_replicas < 0:
        raise ActivityFailed(f"Argument 'max_replicas' must be a whole number ≥ 0, not {max_replicas!r}.")
    if replicas > max_replicas:
        raise ActivityFailed(
            f"Argument 'replicas' ({replicas}) exceeds 'max_replicas' ({max_replicas}): raise it."
        )
    if isinstance(duration, bool) or not isinstance(duration, (int, float)) or duration <= 0:
        raise ActivityFailed(f"Argument 'duration' must be a number of seconds > 0, not {duration!r}.")
    apps = apps_api(secrets)
    try:
        dep = apps.read_namespaced_deployment(name, ns)
    except Exception as exc:
        raise k8s_error(exc, f"Deployment {ns}/{name}") from None
    current = dep.spec.replicas if dep.spec.replicas is not None else 1
    if replicas == -1:
        try:
            restored = restore_replicas(ns, name, secrets)
        except Exception as exc:
            raise k8s_error(exc, f"Deployment {ns}/{name}") from None
        target = current if restored < 0 else restored
        return {
            "namespace": ns,
            "deployment": name,
            "previous_replicas": current,
            "replicas": target,
            "expires_at": None,
        }
    saved = (dep.metadata.annotations or {}).get(PREVIOUS_REPLICAS_ANNOTATION)
    # Keep the oldest saved value: scaling twice must still restore the original count.
    keep = saved if saved is not None else str(current)
    expires = time.time() + float(duration)
    expires_at = iso(datetime.datetime.fromtimestamp(expires, tz=datetime.UTC))
    patch = {
        "metadata": {"annotations": {PREVIOUS_REPLICAS_ANNOTATION: keep, EXPIRES_ANNOTATION: expires_at}},
        "spec": {"replicas": replicas},
    }
    try:
        apps.patch_namespaced_deployment(name, ns, patch)
    except Exception as exc:
        raise k8s_error(exc, f"Deployment {ns}/{name}") from None
    from chaosstream.reaper import spawn_reaper

    spawn_reaper(["replicas", ns, name, expires_at, str(expires)])
    return {
        "namespace": ns,
        "deployment": name,
        "previous_replicas": current,
        "replicas": replicas,
        "expires_at": expires_at,
    }
