"""The ledger of faults chaosstream leaves in a cluster: find them, expire them, undo them.

Every fault records itself in the cluster before it takes effect, so that a rollback, `heal_all`,
`chaosstream heal`, the detached reaper and the in-cluster reaper CronJob all work from the same records
without the output of the action that made it:
- partitions: a pod annotation `chaosstream.io/partition-<id>` on the target pod (JSON: method, ports,
  expires_at, container or policy), plus iptables rules commented `chaosstream-<id>` or a NetworkPolicy
  labelled `chaosstream.io/partition=<id>`;
- scale-downs: Deployment annotations `chaosstream.io/previous-replicas` and `chaosstream.io/expires-at`.
Undo is per record: one failure is reported and the others are still undone.
"""

import json
import time
from typing import List, Optional

from chaoslib.exceptions import ActivityFailed

from chaosstream.clients.kube import Cluster, KubeError, pod_alive
from chaosstream.faults import partition, scaledown
from chaosstream.faults.records import (
    EXPIRES_ANNOTATION,
    MANAGED_BY_SELECTOR,
    OWNER_ANNOTATION,
    PARTITION_ANNOTATION_PREFIX,
    PARTITION_LABEL,
    PREVIOUS_REPLICAS_ANNOTATION,
    Fault,
)

__all__ = ["list_faults", "undo", "heal"]


def list_faults(cluster: Cluster, namespace: str, fault_id: Optional[str] = None) -> List[Fault]:
    """Every chaosstream fault recorded in `namespace` (optionally one partition id)."""
    faults: List[Fault] = []
    for pod in cluster.core.list_namespaced_pod(namespace).items:
        if not pod_alive(pod):
            continue  # its network namespace and rules go away with it
        for key, raw in (pod.metadata.annotations or {}).items():
            if not key.startswith(PARTITION_ANNOTATION_PREFIX):
                continue
            pid = key[len(PARTITION_ANNOTATION_PREFIX) :]
            if fault_id and pid != fault_id:
                continue
            try:
                record = json.loads(raw)
            except ValueError:
                record = {}
            if not isinstance(record, dict):
                record = {}
            owner = record.get("owner") if isinstance(record.get("owner"), str) else None
            faults.append(
                Fault(
                    "partition",
                    namespace,
                    pod.metadata.name,
                    pid,
                    record.get("expires_at"),
                    record,
                    pod,
                    owner,
                )
            )
    policies = cluster.networking.list_namespaced_network_policy(
        namespace, label_selector=MANAGED_BY_SELECTOR
    )
    for policy in policies.items:
        pid = (policy.metadata.labels or {}).get(PARTITION_LABEL, "")
        if fault_id and pid != fault_id:
            continue
        annotations = policy.metadata.annotations or {}
        faults.append(
            Fault(
                "networkpolicy",
                namespace,
                policy.metadata.name,
                pid,
                annotations.get(EXPIRES_ANNOTATION),
                {},
                policy,
                annotations.get(OWNER_ANNOTATION),
            )
        )
    if not fault_id:
        for dep in cluster.apps.list_namespaced_deployment(namespace).items:
            annotations = dep.metadata.annotations or {}
            if PREVIOUS_REPLICAS_ANNOTATION in annotations:
                faults.append(
                    Fault(
                        "scaledown",
                        namespace,
                        dep.metadata.name,
                        dep.metadata.name,
                        annotations.get(EXPIRES_ANNOTATION),
                        {"previous_replicas": annotations[PREVIOUS_REPLICAS_ANNOTATION]},
                        dep,
                        annotations.get(OWNER_ANNOTATION),
                    )
                )
    return faults


def undo(cluster: Cluster, fault: Fault) -> str:
    """Revert one fault; returns what was reverted, or "" when it had already ended on its own (then only
    its stale record is removed, so a heal does not report a fault that was not there)."""
    if fault.kind == "partition":
        return partition.undo_record(cluster, fault)
    if fault.kind == "networkpolicy":
        if partition.delete_policy(cluster, fault.namespace, fault.target):
            return f"NetworkPolicy {fault.namespace}/{fault.target}"
        return ""
    if fault.kind == "scaledown":
        restored = scaledown.restore(cluster, fault.namespace, fault.target)
        return (
            f"Deployment {fault.namespace}/{fault.target} scaled back to {restored}" if restored >= 0 else ""
        )
    raise ValueError(f"unknown fault kind {fault.kind!r}")


def heal(
    cluster: Cluster,
    namespace: str,
    fault_id: Optional[str] = None,
    expired_only: bool = False,
    kinds: tuple = ("partition", "networkpolicy", "scaledown"),
    owner: Optional[str] = None,
) -> List[str]:
    """Undo every recorded fault (of `kinds`, optionally one id, optionally only the expired ones, optionally
    only those `owner` made).

    Total: each fault is tried; if any failed, raises one `ActivityFailed` that lists what was healed and
    what was not, after trying them all."""
    healed: List[str] = []
    failed: List[str] = []
    # A heal is often a rollback played right after an interrupt: ride out a brief transport hiccup
    # rather than leave a fault behind until it expires — within 1 s (longer outages are the caller's to retry and report, as `heal --retry-for` does), so a cluster
    # that never answers still fails the heal within its timeout.
    deadline = time.monotonic() + min(cluster.timeout, 1.0)
    while True:
        try:
            faults = list_faults(cluster, namespace, fault_id)
            break
        except KubeError as exc:
            if exc.status not in (None, 0) or time.monotonic() + 0.5 >= deadline:
                raise
            time.sleep(0.5)
    for fault in faults:
        if fault.kind not in kinds or (expired_only and not fault.expired()):
            continue
        if owner is not None and fault.owner != owner:
            continue
        try:
            what = undo(cluster, fault)
        except (KubeError, ActivityFailed) as exc:
            failed.append(f"{fault.kind} {fault.fault_id} on {namespace}/{fault.target}: {exc}")
            continue
        if what:
            healed.append(what)
    if failed:
        done = f" Healed: {'; '.join(healed)}." if healed else ""
        raise ActivityFailed(f"Could not heal {len(failed)} fault(s): {' | '.join(failed)}.{done}")
    return healed
