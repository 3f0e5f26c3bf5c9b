"""Restart one control-plane (API) pod: the chart runs two API replicas so that users keep their streams."""

import random
import time
from typing import Any, Dict

from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration, Secrets

from chaosstream import arguments
from chaosstream.clients.kube import Cluster, KubeError, check_namespace, pod_alive, pod_ready
from chaosstream.selection import remember_fault_end, remember_fault_start
from chaosstream.settings import resolve_settings

__all__ = ["restart_api_pod"]

# The chart's API pods: chart/templates/_helpers.tpl:67 (component api), chart/values.yaml (2 replicas).
API_SELECTOR = "app.kubernetes.io/component=api"


def restart_api_pod(
    label_selector: str = API_SELECTOR,
    namespace: str = None,
    grace_period: int = 30,
    min_ready: int = 2,
    wait: bool = True,
    timeout: float = 120.0,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Dict[str, Any]:
    """Delete one ready StreamSpace API pod (`label_selector`, default the chart's
    `app.kubernetes.io/component=api`), chosen at random, as a node drain or a rolling update would. Refused
    unless at least `min_ready` (default 2, the chart's replicas) API pods are ready: another replica keeps
    serving, so the blast radius is the streams and requests that pod held. Only pods whose containers
    include one named `api` are candidates.

    With `wait=true` it waits (up to `timeout`) until `min_ready` API pods are ready again, replacement
    included, and records that moment as the end of the fault (streams are measured from it).

    Returns `{"namespace", "killed", "ready_again_s" (with wait)}`.
    """
    settings = resolve_settings(configuration, secrets)
    ns = check_namespace(namespace, settings.namespace)
    selector = arguments.text(label_selector, "label_selector", required=True, what="a label selector")
    grace_period = arguments.whole(grace_period, "grace_period", minimum=0)
    min_ready = arguments.whole(min_ready, "min_ready", minimum=1)
    wait = arguments.flag(wait, "wait")
    timeout = arguments.seconds(timeout, "timeout")
    core = Cluster(secrets, settings.kube_timeout).core

    def ready_pods() -> list:
        pods = core.list_namespaced_pod(ns, label_selector=selector).items
        return [
            p
            for p in pods
            if pod_alive(p) and pod_ready(p) and any(c.name == "api" for c in (p.spec.containers or []))
        ]

    ready = ready_pods()
    if len(ready) < min_ready:
        raise ActivityFailed(
            f"Only {len(ready)} ready API pod(s) match '{selector}' in namespace {ns}, {min_ready} needed "
            "('min_ready'): restarting one would take the API down; check 'label_selector' or the replicas."
        )
    victim = random.choice(ready)
    name = victim.metadata.name
    started = time.monotonic()
    remember_fault_start()
    try:
        core.delete_namespaced_pod(name, ns, grace_period_seconds=grace_period)
    except KubeError as exc:
        if exc.status != 404:
            raise
    result: Dict[str, Any] = {"namespace": ns, "killed": [name]}
    if not wait:
        return result
    while True:
        now_ready = [p for p in ready_pods() if p.metadata.name != name]
        if len(now_ready) >= min_ready:
            break
        if time.monotonic() - started > timeout:
            raise ActivityFailed(
                f"The API pods did not come back to {min_ready} ready within {timeout:g}s after deleting {name}."
            )
        time.sleep(min(settings.poll_interval, 1.0))
    remember_fault_end("API pod replaced", time.time())
    result["ready_again_s"] = round(time.monotonic() - started, 3)
    return result
