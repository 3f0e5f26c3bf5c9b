"""Scale-down of the agent Deployment, recorded in its annotations so anything can restore it."""

import datetime
import time
from typing import Any, Dict

from chaosstream.clients.kube import Cluster
from chaosstream.faults.records import (
    EXPIRES_ANNOTATION,
    OWNER_ANNOTATION,
    PREVIOUS_REPLICAS_ANNOTATION,
    RUN_ID,
)
from chaosstream.timeutil import iso

__all__ = ["scale_down", "restore"]


def restore(cluster: Cluster, namespace: str, deployment: str, only_if_expires: str = None) -> int:
    """Put back the replica count a scale-down saved; returns the count (or -1 when nothing was saved).

    `only_if_expires` makes it a no-op unless the expiry annotation still has that value (the reaper
    must not undo a newer scale-down)."""
    dep = cluster.apps.read_namespaced_deployment(deployment, namespace)
    annotations = dict(dep.metadata.annotations or {})
    saved = annotations.get(PREVIOUS_REPLICAS_ANNOTATION)
    if saved is None:
        return -1
    if only_if_expires is not None and annotations.get(EXPIRES_ANNOTATION) != only_if_expires:
        return -1
    patch = {
        "metadata": {
            "annotations": {
                PREVIOUS_REPLICAS_ANNOTATION: None,
                EXPIRES_ANNOTATION: None,
                OWNER_ANNOTATION: None,
            }
        },
        "spec": {"replicas": int(saved)},
    }
    cluster.apps.patch_namespaced_deployment(deployment, namespace, patch)
    return int(saved)


def scale_down(
    cluster: Cluster, namespace: str, deployment: str, replicas: int, duration: float
) -> Dict[str, Any]:
    """Scale to `replicas`, recording the original count and the fault's expiry, and start the reaper."""
    from chaosstream.faults.deadman import spawn_reaper

    dep = cluster.apps.read_namespaced_deployment(deployment, namespace)
    current = dep.spec.replicas if dep.spec.replicas is not None else 1
    saved = (dep.metadata.annotations or {}).get(PREVIOUS_REPLICAS_ANNOTATION)
    # Keep the oldest saved value: scaling twice must still restore the original count.
    keep = saved if saved is not None else str(current)
    expires = time.time() + float(duration)
    expires_at = iso(datetime.datetime.fromtimestamp(expires, tz=datetime.UTC))
    patch = {
        "metadata": {
            "annotations": {
                PREVIOUS_REPLICAS_ANNOTATION: keep,
                EXPIRES_ANNOTATION: expires_at,
                OWNER_ANNOTATION: RUN_ID,
            }
        },
        "spec": {"replicas": replicas},
    }
    cluster.apps.patch_namespaced_deployment(deployment, namespace, patch)
    spawn_reaper(["replicas", namespace, deployment, expires_at, str(expires)], cluster.secrets)
    return {"previous_replicas": current, "expires_at": expires_at}
