"""Actions on the agent Deployment: rollout restart, pod kills, scaling — each with its inverse."""

import os
import random
from typing import Any, Dict

from chaoslib.types import Configuration, Secrets

from chaosstream import arguments
from chaosstream.clients.kube import Cluster, KubeError, check_namespace, pod_alive
from chaosstream.clients.rollout import agent_pods, wait_for_rollout
from chaosstream.faults import process, scaledown
from chaosstream.faults.targets import (
    agent_container_of,
    agent_selector,
    check_agent_deployment,
    check_agent_pods,
)
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
    mode: str = "delete",
    duration: float = 60.0,
    image: str = None,
    start_timeout: float = 120.0,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Dict[str, Any]:
    """Take agent pods down, at most `max_pods` (default 1), chosen at random among running agent pods
    matching `label_selector` (default: `streamspace_agent_selector`), by `mode`:

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

    Returns `{"namespace", "killed": [pod names], "grace_period", "mode", "details": [...]}`.
    """
    settings = resolve_settings(configuration, secrets)
    ns = check_namespace(namespace, settings.namespace)
    selector = agent_selector(label_selector, settings.agent_selector)
    max_pods = arguments.whole(max_pods, "max_pods", minimum=1)
    grace_period = arguments.whole(grace_period, "grace_period", minimum=0)
    allow_non_agent = arguments.flag(allow_non_agent, "allow_non_agent")
    mode = arguments.choice(mode, "mode", ("delete", "crash", "hang"))
    start_timeout = arguments.seconds(start_timeout, "start_timeout")
    if mode == "hang":
        duration = arguments.seconds(duration, "duration")
    if image is None:
        image = os.environ.get("STREAMSPACE_PARTITION_IMAGE") or "nicolaka/netshoot:v0.13"
    image = arguments.text(image, "image", required=True, what="a container image with sh")
    cluster = Cluster(secrets)
    core = cluster.core
    alive = [p for p in core.list_namespaced_pod(ns, label_selector=selector).items if pod_alive(p)]
    if not alive:
        raise arguments.ArgumentError(
            f"No running agent pod matches '{selector}' in namespace {ns}: check 'label_selector'."
        )
    check_agent_pods(alive, ns, settings.agent_container, allow_non_agent)
    victims = random.sample(alive, min(max_pods, len(alive)))
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
    return {"namespace": ns, "killed": killed, "grace_period": grace_period, "mode": mode, "details": details}


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
