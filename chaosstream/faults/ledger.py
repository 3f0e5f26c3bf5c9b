"""The ledger of faults chaosstream leaves in a cluster: find them, expire them, undo them.

Every fault records itself in the cluster before it takes effect, so that a rollback, `heal_all`,
`chaosstream heal`, the detached reaper and the in-cluster reaper CronJob all work from the same records
without the output of the action that made it:
- partitions: a pod annotation `chaosstream.io/partition-<id>` on the target pod (JSON: method, ports,
  expires_at, container or policy), plus iptables rules commented `chaosstream-<id>` or a NetworkPolicy
  labelled `chaosstream.io/partition=<id>`;
- scale-downs: Deployment annotations `chaosstream.io/previous-replicas` and `chaosstream.io/expires-at`;
- sessions a run created: a ConfigMap per run labelled `chaosstream.io/record=sessions` (`faults.sessions`),
  undone by terminating them through the StreamSpace API — which needs the API credentials of the
  settings; without them the record is left and reported (`HealReport.left`), never counted as healed.
Undo is per record: one failure is reported and the others are still undone.
"""

import json
import time
from typing import Iterable, List, Optional

from chaoslib.exceptions import ActivityFailed

from chaosstream.clients.kube import Cluster, KubeError, pod_alive
from chaosstream.faults import partition, scaledown, sessions
from chaosstream.faults.records import (
    EXPIRES_ANNOTATION,
    MANAGED_BY_SELECTOR,
    OWNER_ANNOTATION,
    PARTITION_ANNOTATION_PREFIX,
    PARTITION_LABEL,
    PREVIOUS_REPLICAS_ANNOTATION,
    Fault,
)
from chaosstream.settings import Settings

__all__ = ["KINDS", "HealReport", "list_faults", "undo", "heal"]

KINDS = ("partition", "networkpolicy", "scaledown", sessions.RECORD_KIND)


class HealReport(List[str]):
    """What a heal reverted (one line each), plus `left`: session records it could not act on for lack of
    StreamSpace credentials (one line each, with their sessions and owner), and `refused`: recorded
    sessions it would not terminate because they predate their record (not a run's own: left running)."""

    def __init__(self, healed: Iterable[str] = (), left: Iterable[str] = ()) -> None:
        super().__init__(healed)
        self.left: List[str] = list(left)
        self.refused: List[str] = []


def list_faults(
    cluster: Cluster, namespace: str, fault_id: Optional[str] = None, kinds: Iterable[str] = KINDS
) -> List[Fault]:
    """Every chaosstream fault of `kinds` recorded in `namespace` (optionally one partition id)."""
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
    if not fault_id and "scaledown" in kinds:
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
    if not fault_id and sessions.RECORD_KIND in kinds:
        records = cluster.core.list_namespaced_config_map(namespace, label_selector=sessions.SELECTOR)
        faults.extend(sessions.fault_of(cm) for cm in records.items)
    return faults


def undo(
    cluster: Cluster, fault: Fault, settings: Optional[Settings] = None, refused: Optional[List[str]] = None
) -> str:
    """Revert one fault; returns what was reverted, or "" when it had already ended on its own (then only
    its stale record is removed, so a heal does not report a fault that was not there). Recorded sessions
    a heal will not terminate are appended to `refused`."""
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
    if fault.kind == sessions.RECORD_KIND:
        if fault.record.get("sessions") and not sessions.has_credentials(settings):
            raise ActivityFailed(
                f"the sessions of ConfigMap {fault.namespace}/{fault.target} need StreamSpace credentials to be terminated."
            )
        return sessions.terminate(cluster, fault, settings, [] if refused is None else refused)
    raise ValueError(f"unknown fault kind {fault.kind!r}")


def heal(
    cluster: Cluster,
    namespace: str,
    fault_id: Optional[str] = None,
    expired_only: bool = False,
    kinds: Iterable[str] = KINDS,
    owner: Optional[str] = None,
    settings: Optional[Settings] = None,
    spare_owner: Optional[str] = None,
) -> HealReport:
    """Undo every recorded fault (of `kinds`, optionally one id, optionally only the expired ones, optionally
    only those `owner` made). Session records are terminated with the credentials of `settings`; without
    credentials they are left and listed in the report's `left`. `spare_owner` (the live run-lock
    holder) keeps that run's session records even when expired: its sessions are in use.

    Total: each fault is tried; if any failed, raises one `ActivityFailed` that lists what was healed and
    what was not, after trying them all. Each line names the run that made the fault, when recorded."""
    kinds = tuple(kinds)
    healed = HealReport()
    failed: List[str] = []
    # A heal is often a rollback played right after an interrupt: ride out a brief transport hiccup
    # rather than leave a fault behind until it expires — within 1 s (longer outages are the caller's to retry and report, as `heal --retry-for` does), so a cluster
    # that never answers still fails the heal within its timeout.
    deadline = time.monotonic() + min(cluster.timeout, 1.0)
    while True:
        try:
            faults = list_faults(cluster, namespace, fault_id, kinds)
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
        run = f" (run {fault.owner})" if fault.owner else ""
        if fault.kind == sessions.RECORD_KIND:
            if spare_owner is not None and fault.owner == spare_owner:
                continue
            if fault.record.get("sessions") and not sessions.has_credentials(settings):
                ids = ", ".join(fault.record["sessions"])
                healed.left.append(f"sessions {ids} of ConfigMap {namespace}/{fault.target}{run}")
                continue
        try:
            what = undo(cluster, fault, settings, healed.refused)
        except (KubeError, ActivityFailed) as exc:
            failed.append(
                f"{fault.kind} {fault.fault_id} on {namespace}/{fault.target}{run}: {str(exc).rstrip('.')}"
            )
            continue
        if what:
            healed.append(what + run)
    if failed:
        done = f" Healed: {'; '.join(healed)}." if healed else ""
        if healed.left:
            done += f" Left (no StreamSpace credentials): {'; '.join(healed.left)}."
        raise ActivityFailed(f"Could not heal {len(failed)} fault(s): {' | '.join(failed)}.{done}")
    return healed
