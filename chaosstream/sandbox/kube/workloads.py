"""Deployment → ReplicaSet → Pod and StatefulSet controllers (the parts of kube-controller-manager we need)."""

from __future__ import annotations

import hashlib
import json
import math
from typing import TYPE_CHECKING, Any

from .kubelet import is_ready
from .resources import DEPLOYMENT, POD, REPLICASET, STATEFULSET
from .selectors import format_selector
from .store import clone, now_iso, random_suffix

if TYPE_CHECKING:
    from .cluster import Cluster

Obj = dict[str, Any]

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def template_hash(template: Obj) -> str:
    """Stable 10-character hash of a pod template (the ``pod-template-hash`` label)."""
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()
    n = int.from_bytes(digest[:8], "big")
    out = []
    for _ in range(10):
        n, r = divmod(n, len(_ALPHABET))
        out.append(_ALPHABET[r])
    return "".join(out)


def resolve_fenceposts(deploy: Obj) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) for a RollingUpdate: surge rounds up, unavailable rounds down."""
    replicas = int(deploy["spec"].get("replicas", 1))
    ru = (deploy["spec"].get("strategy") or {}).get("rollingUpdate") or {}

    def value(raw: Any, round_up: bool) -> int:
        if isinstance(raw, str) and raw.endswith("%"):
            exact = int(raw[:-1]) * replicas / 100
            return math.ceil(exact) if round_up else math.floor(exact)
        return int(raw)

    surge = value(ru.get("maxSurge", "25%"), True)
    unavailable = value(ru.get("maxUnavailable", "25%"), False)
    if surge == 0 and unavailable == 0:
        unavailable = 1  # as the deployment controller does, so a rollout can make progress
    return surge, unavailable


def owner_ref(owner: Obj) -> Obj:
    """A controller ownerReference pointing at ``owner``."""
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def controller_of(obj: Obj) -> Obj | None:
    """The ownerReference with ``controller: true``, if any."""
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            return ref
    return None


def _active(pods: list[Obj]) -> list[Obj]:
    return [
        p
        for p in pods
        if not p["metadata"].get("deletionTimestamp")
        and p["status"].get("phase") not in ("Succeeded", "Failed")
    ]


def _deletion_rank(pod: Obj) -> tuple[int, int, int, str]:
    # Like the ReplicaSet controller: unscheduled < pending < not ready < ready; newest first among equals.
    status = pod.get("status") or {}
    return (
        0 if not pod["spec"].get("nodeName") else 1,
        0 if status.get("phase") == "Pending" else 1,
        1 if is_ready(pod) else 0,
        "".join(chr(255 - ord(c)) for c in pod["metadata"].get("creationTimestamp", "")),
    )


# ---- ReplicaSet ------------------------------------------------------------------------------
def reconcile_replicaset(emu: Cluster, namespace: str, name: str) -> None:
    """Keep ``spec.replicas`` active pods and publish the ReplicaSet status."""
    store = emu.store
    rs = store.get(REPLICASET, namespace, name)
    if rs is None or rs["metadata"].get("deletionTimestamp"):
        return
    pods = store.owned_by(rs["metadata"]["uid"], POD)
    active = _active(pods)
    want = int(rs["spec"].get("replicas", 1))
    if len(active) < want:
        template = rs["spec"]["template"]
        for _ in range(want - len(active)):
            meta = clone(template.get("metadata") or {})
            meta.pop("name", None)
            meta["name"] = f"{name}-{random_suffix()}"
            while store.get(POD, namespace, meta["name"]) is not None:
                meta["name"] = f"{name}-{random_suffix()}"
            meta["generateName"] = f"{name}-"
            meta["ownerReferences"] = [owner_ref(rs)]
            pod = emu.create_object(
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {**meta, "namespace": namespace},
                    "spec": clone(template["spec"]),
                }
            )
            emu.record_event(rs, "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}")
    elif len(active) > want:
        for pod in sorted(active, key=_deletion_rank)[: len(active) - want]:
            emu.delete(POD, namespace, pod["metadata"]["name"])
            emu.record_event(rs, "SuccessfulDelete", f"Deleted pod: {pod['metadata']['name']}")
    active = _active(store.owned_by(rs["metadata"]["uid"], POD))
    ready = sum(1 for p in active if is_ready(p))
    status = {
        "replicas": len(active),
        "fullyLabeledReplicas": len(active),
        "readyReplicas": ready,
        "availableReplicas": ready,
        "observedGeneration": rs["metadata"].get("generation", 1),
    }
    status = {k: v for k, v in status.items() if v or k in ("replicas", "observedGeneration")}
    if status != rs.get("status"):
        store.update(REPLICASET, namespace, name, dict(rs, status=status), "status")


# ---- Deployment ------------------------------------------------------------------------------
def _scale(emu: Cluster, deploy: Obj, rs: Obj, replicas: int) -> Obj:
    current = int(rs["spec"].get("replicas", 0))
    if current == replicas:
        return rs
    new = clone(rs)
    new["spec"]["replicas"] = replicas
    ann = new["metadata"].setdefault("annotations", {})
    ann["deployment.kubernetes.io/desired-replicas"] = str(deploy["spec"].get("replicas", 1))
    ann["deployment.kubernetes.io/max-replicas"] = str(
        int(deploy["spec"].get("replicas", 1)) + _surge(deploy)
    )
    ns, name = rs["metadata"]["namespace"], rs["metadata"]["name"]
    out = emu.store.update(REPLICASET, ns, name, new)
    direction = "up" if replicas > current else "down"
    emu.record_event(
        deploy, "ScalingReplicaSet", f"Scaled {direction} replica set {name} from {current} to {replicas}"
    )
    return out


def _surge(deploy: Obj) -> int:
    if (deploy["spec"].get("strategy") or {}).get("type") == "Recreate":
        return 0
    return resolve_fenceposts(deploy)[0]


def _rs_available(rs: Obj) -> int:
    return int((rs.get("status") or {}).get("availableReplicas", 0))


def reconcile_deployment(emu: Cluster, namespace: str, name: str) -> None:
    """Roll ReplicaSets towards the deployment's template and publish its status."""
    store = emu.store
    deploy = store.get(DEPLOYMENT, namespace, name)
    if deploy is None or deploy["metadata"].get("deletionTimestamp"):
        return
    uid = deploy["metadata"]["uid"]
    spec = deploy["spec"]
    replicas = int(spec.get("replicas", 1))
    template = spec["template"]
    h = template_hash(template)
    owned = [rs for rs in store.owned_by(uid, REPLICASET) if not rs["metadata"].get("deletionTimestamp")]
    owned.sort(key=lambda rs: rs["metadata"]["creationTimestamp"])
    new_rs = next((rs for rs in owned if rs["metadata"].get("labels", {}).get(HASH_LABEL) == h), None)
    max_rev = max((int(rs["metadata"].get("annotations", {}).get(REVISION, "0")) for rs in owned), default=0)
    if spec.get("paused"):
        _write_deployment_status(emu, deploy, new_rs, owned)
        return
    if new_rs is None:
        new_rs = _create_replicaset(emu, deploy, h, max_rev + 1, owned)
        if new_rs is None:
            return
        owned.append(new_rs)
    elif int(new_rs["metadata"].get("annotations", {}).get(REVISION, "0")) < max_rev:
        # Rolling back to an older template: that ReplicaSet becomes the newest revision again.
        bumped = clone(new_rs)
        bumped["metadata"].setdefault("annotations", {})[REVISION] = str(max_rev + 1)
        new_rs = store.update(REPLICASET, namespace, new_rs["metadata"]["name"], bumped)
        owned = [new_rs if rs["metadata"]["uid"] == new_rs["metadata"]["uid"] else rs for rs in owned]
    old = [rs for rs in owned if rs["metadata"]["uid"] != new_rs["metadata"]["uid"]]
    if (spec.get("strategy") or {}).get("type") == "Recreate":
        _recreate(emu, deploy, new_rs, old, replicas)
    else:
        new_rs = _rolling(emu, deploy, new_rs, old, replicas)
    owned = [rs for rs in store.owned_by(uid, REPLICASET) if not rs["metadata"].get("deletionTimestamp")]
    _cleanup_history(emu, deploy, new_rs, owned)
    _write_deployment_status(emu, store.get(DEPLOYMENT, namespace, name) or deploy, new_rs, owned)


def _create_replicaset(emu: Cluster, deploy: Obj, h: str, revision: int, owned: list[Obj]) -> Obj | None:
    ns, name = deploy["metadata"]["namespace"], deploy["metadata"]["name"]
    rs_name = f"{name}-{h}"
    if emu.store.get(REPLICASET, ns, rs_name) is not None:
        return None  # a foreign ReplicaSet holds the name; a real controller would bump collisionCount
    template = clone(deploy["spec"]["template"])
    tmeta = template.setdefault("metadata", {})
    tmeta.setdefault("labels", {})[HASH_LABEL] = h
    selector = clone(deploy["spec"]["selector"])
    selector.setdefault("matchLabels", {})[HASH_LABEL] = h
    replicas = int(deploy["spec"].get("replicas", 1))
    has_old_pods = any(int(rs["spec"].get("replicas", 0)) > 0 for rs in owned)
    surge = _surge(deploy)
    if not has_old_pods:
        start = replicas
    elif (deploy["spec"].get("strategy") or {}).get("type") == "Recreate":
        start = 0
    else:
        current = sum(int(rs["spec"].get("replicas", 0)) for rs in owned)
        start = max(0, min(replicas + surge - current, replicas))
    rs = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": rs_name,
            "namespace": ns,
            "labels": dict(tmeta["labels"]),
            "annotations": {
                REVISION: str(revision),
                "deployment.kubernetes.io/desired-replicas": str(replicas),
                "deployment.kubernetes.io/max-replicas": str(replicas + surge),
            },
            "ownerReferences": [owner_ref(deploy)],
        },
        "spec": {"replicas": start, "selector": selector, "template": template},
    }
    created = emu.create_object(rs)
    if start:
        emu.record_event(deploy, "ScalingReplicaSet", f"Scaled up replica set {rs_name} from 0 to {start}")
    return created


def _recreate(emu: Cluster, deploy: Obj, new_rs: Obj, old: list[Obj], replicas: int) -> None:
    for rs in old:
        _scale(emu, deploy, rs, 0)
    if any(emu.store.owned_by(rs["metadata"]["uid"], POD) for rs in old):
        return  # wait until every old pod is gone (the pod DELETED events requeue us)
    _scale(emu, deploy, new_rs, replicas)


def _rolling(emu: Cluster, deploy: Obj, new_rs: Obj, old: list[Obj], replicas: int) -> Obj:
    store = emu.store
    if not any(int(rs["spec"].get("replicas", 0)) for rs in old):
        return _scale(emu, deploy, new_rs, replicas)  # no rollout in progress: plain scaling
    surge, unavailable = resolve_fenceposts(deploy)
    all_rs = [new_rs, *old]
    current = sum(int(rs["spec"].get("replicas", 0)) for rs in all_rs)
    new_count = int(new_rs["spec"].get("replicas", 0))
    if new_count < replicas and current < replicas + surge:
        new_rs = _scale(emu, deploy, new_rs, min(new_count + replicas + surge - current, replicas))
    elif new_count > replicas:
        new_rs = _scale(emu, deploy, new_rs, replicas)
    # Scale old ReplicaSets down without dropping below replicas - maxUnavailable available pods.
    old = [store.get(REPLICASET, rs["metadata"]["namespace"], rs["metadata"]["name"]) or rs for rs in old]
    all_rs = [new_rs, *old]
    all_pods = sum(int(rs["spec"].get("replicas", 0)) for rs in all_rs)
    min_available = replicas - unavailable
    new_unavailable = int(new_rs["spec"].get("replicas", 0)) - _rs_available(new_rs)
    max_scaled_down = all_pods - min_available - new_unavailable
    if max_scaled_down <= 0:
        return new_rs
    cleaned = 0
    for i, rs in enumerate(old):  # first drop old pods that are not available anyway
        spec_n = int(rs["spec"].get("replicas", 0))
        unhealthy = spec_n - _rs_available(rs)
        if spec_n == 0 or unhealthy <= 0 or cleaned >= max_scaled_down:
            continue
        step = min(max_scaled_down - cleaned, unhealthy)
        old[i] = _scale(emu, deploy, rs, spec_n - step)
        cleaned += step
    available = sum(_rs_available(rs) for rs in [new_rs, *old])
    budget = min(available - min_available, max_scaled_down - cleaned)
    for rs in old:
        if budget <= 0:
            break
        spec_n = int(rs["spec"].get("replicas", 0))
        if spec_n == 0:
            continue
        step = min(spec_n, budget)
        _scale(emu, deploy, rs, spec_n - step)
        budget -= step
    return new_rs


def _cleanup_history(emu: Cluster, deploy: Obj, new_rs: Obj, owned: list[Obj]) -> None:
    limit = int(deploy["spec"].get("revisionHistoryLimit", 10))
    idle = [
        rs
        for rs in owned
        if rs["metadata"]["uid"] != new_rs["metadata"]["uid"]
        and int(rs["spec"].get("replicas", 0)) == 0
        and int((rs.get("status") or {}).get("replicas", 0)) == 0
    ]
    idle.sort(key=lambda rs: int(rs["metadata"].get("annotations", {}).get(REVISION, "0")))
    for rs in idle[: max(0, len(idle) - limit)]:
        emu.delete(REPLICASET, rs["metadata"]["namespace"], rs["metadata"]["name"])


def _condition(ctype: str, status: bool, reason: str, message: str, old: list[Obj]) -> Obj:
    stamp = now_iso()
    flag = "True" if status else "False"
    prev = next((c for c in old if c.get("type") == ctype), None)
    transition = prev["lastTransitionTime"] if prev and prev.get("status") == flag else stamp
    update = (
        prev["lastUpdateTime"]
        if prev and prev.get("status") == flag and prev.get("reason") == reason
        else stamp
    )
    return {
        "type": ctype,
        "status": flag,
        "lastUpdateTime": update,
        "lastTransitionTime": transition,
        "reason": reason,
        "message": message,
    }


def _write_deployment_status(emu: Cluster, deploy: Obj, new_rs: Obj | None, owned: list[Obj]) -> None:
    spec = deploy["spec"]
    replicas = int(spec.get("replicas", 1))
    st = [rs.get("status") or {} for rs in owned]
    total = sum(int(s.get("replicas", 0)) for s in st)
    ready = sum(int(s.get("readyReplicas", 0)) for s in st)
    available = sum(int(s.get("availableReplicas", 0)) for s in st)
    updated = int((new_rs or {}).get("status", {}).get("replicas", 0)) if new_rs else 0
    if (spec.get("strategy") or {}).get("type") == "Recreate":
        min_available = replicas
    else:
        min_available = replicas - resolve_fenceposts(deploy)[1]
    old_conditions = (deploy.get("status") or {}).get("conditions") or []
    is_available = available >= min_available
    rs_name = new_rs["metadata"]["name"] if new_rs else ""
    complete = updated == replicas and available == replicas and total == replicas
    if spec.get("paused"):
        progressing = _condition(
            "Progressing", False, "DeploymentPaused", "Deployment is paused", old_conditions
        )
    elif complete:
        progressing = _condition(
            "Progressing",
            True,
            "NewReplicaSetAvailable",
            f'ReplicaSet "{rs_name}" has successfully progressed.',
            old_conditions,
        )
    else:
        progressing = _condition(
            "Progressing",
            True,
            "ReplicaSetUpdated",
            f'ReplicaSet "{rs_name}" is progressing.',
            old_conditions,
        )
    conditions = [
        _condition(
            "Available",
            is_available,
            "MinimumReplicasAvailable" if is_available else "MinimumReplicasUnavailable",
            "Deployment has minimum availability."
            if is_available
            else "Deployment does not have minimum availability.",
            old_conditions,
        ),
        progressing,
    ]
    status: Obj = {
        "observedGeneration": deploy["metadata"].get("generation", 1),
        "replicas": total,
        "updatedReplicas": updated,
        "readyReplicas": ready,
        "availableReplicas": available,
        "unavailableReplicas": max(replicas - available, 0),
        "conditions": conditions,
    }
    status = {k: v for k, v in status.items() if v or k in ("observedGeneration", "conditions")}
    ns, name = deploy["metadata"]["namespace"], deploy["metadata"]["name"]
    if new_rs is not None:
        rev = new_rs["metadata"].get("annotations", {}).get(REVISION)
        if rev and deploy["metadata"].get("annotations", {}).get(REVISION) != rev:
            new = clone(deploy)
            new["metadata"].setdefault("annotations", {})[REVISION] = rev
            deploy = emu.store.update(DEPLOYMENT, ns, name, new)
    if _strip_times(status) != _strip_times(deploy.get("status") or {}):
        emu.store.update(DEPLOYMENT, ns, name, dict(deploy, status=status), "status")


def _strip_times(status: Obj) -> Obj:
    # Timestamps alone must not cause a status write (that would make the controller loop forever).
    out = dict(status)
    out["conditions"] = [
        {k: v for k, v in c.items() if not k.endswith("Time")} for c in status.get("conditions") or []
    ]
    return out


# ---- StatefulSet -----------------------------------------------------------------------------
def reconcile_statefulset(emu: Cluster, namespace: str, name: str) -> None:
    """Pods ``<name>-0..n-1`` created in order (each after the previous is Ready); rolling template updates."""
    store = emu.store
    sts = store.get(STATEFULSET, namespace, name)
    if sts is None or sts["metadata"].get("deletionTimestamp"):
        return
    spec = sts["spec"]
    replicas = int(spec.get("replicas", 1))
    revision = f"{name}-{template_hash(spec['template'])}"
    ordered = spec.get("podManagementPolicy", "OrderedReady") == "OrderedReady"
    pods = {p["metadata"]["name"]: p for p in store.owned_by(sts["metadata"]["uid"], POD)}
    for i in range(replicas):
        pod_name = f"{name}-{i}"
        pod = pods.get(pod_name)
        if pod is None:
            if store.get(POD, namespace, pod_name) is not None:
                break  # a terminating predecessor still holds the name
            template = clone(spec["template"])
            meta = template.get("metadata") or {}
            labels = dict(meta.get("labels") or {})
            labels.update(
                {
                    "controller-revision-hash": revision,
                    "statefulset.kubernetes.io/pod-name": pod_name,
                    "apps.kubernetes.io/pod-index": str(i),
                }
            )
            emu.create_object(
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {
                        "name": pod_name,
                        "namespace": namespace,
                        "labels": labels,
                        "annotations": dict(meta.get("annotations") or {}),
                        "ownerReferences": [owner_ref(sts)],
                    },
                    "spec": dict(template["spec"], hostname=pod_name, subdomain=spec.get("serviceName", "")),
                }
            )
            emu.record_event(
                sts, "SuccessfulCreate", f"create Pod {pod_name} in StatefulSet {name} successful"
            )
            if ordered:
                break
        elif ordered and not is_ready(pod):
            break
    for pod_name, pod in sorted(pods.items(), key=lambda kv: -_ordinal(kv[0])):
        if _ordinal(pod_name) >= replicas and not pod["metadata"].get("deletionTimestamp"):
            emu.delete(POD, namespace, pod_name)
            emu.record_event(
                sts, "SuccessfulDelete", f"delete Pod {pod_name} in StatefulSet {name} successful"
            )
            if ordered:
                break
    live = [
        p for p in store.owned_by(sts["metadata"]["uid"], POD) if _ordinal(p["metadata"]["name"]) < replicas
    ]
    if all(is_ready(p) for p in live) and len(live) == replicas:
        stale = [
            p for p in live if p["metadata"].get("labels", {}).get("controller-revision-hash") != revision
        ]
        if stale:  # rolling update: replace the highest outdated ordinal, one at a time
            victim = max(stale, key=lambda p: _ordinal(p["metadata"]["name"]))
            emu.delete(POD, namespace, victim["metadata"]["name"])
    live = [p for p in live if not p["metadata"].get("deletionTimestamp")]
    ready = sum(1 for p in live if is_ready(p))
    updated = sum(
        1 for p in live if p["metadata"].get("labels", {}).get("controller-revision-hash") == revision
    )
    status = {
        "observedGeneration": sts["metadata"].get("generation", 1),
        "replicas": len(live),
        "readyReplicas": ready,
        "currentReplicas": updated,
        "updatedReplicas": updated,
        "availableReplicas": ready,
        "currentRevision": revision,
        "updateRevision": revision,
        "collisionCount": 0,
    }
    if status != sts.get("status"):
        store.update(STATEFULSET, namespace, name, dict(sts, status=status), "status")


def _ordinal(pod_name: str) -> int:
    tail = pod_name.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else -1


def scale_object(obj: Obj) -> Obj:
    """autoscaling/v1 ``Scale`` view of a workload."""
    meta = obj["metadata"]
    return {
        "apiVersion": "autoscaling/v1",
        "kind": "Scale",
        "metadata": {
            k: meta[k]
            for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if k in meta
        },
        "spec": {"replicas": int(obj["spec"].get("replicas", 1))},
        "status": {
            "replicas": int((obj.get("status") or {}).get("replicas", 0)),
            "selector": format_selector(obj["spec"].get("selector")),
        },
    }
