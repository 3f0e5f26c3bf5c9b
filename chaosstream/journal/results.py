"""Results of scheduled runs that outlive the Job: one ConfigMap per run, in a ring of `SLOTS` names.

`chaosstream save-result` (the CronJob's last step) writes the verdict line, JUnit XML, the Markdown
report, the OpenMetrics of `chaosstream history` (metrics.prom) and the journal (gzipped, in
binaryData) of a run into `chaosstream-result-<n>` (n = 1..SLOTS):
an empty slot if there is one, else the oldest. A fixed set of names is what lets the Role grant
get/update by resourceNames (no list, no delete) and keeps the retention at SLOTS runs. Read them with
`kubectl get cm -n NS -l app.kubernetes.io/name=chaosstream-result -L chaosstream.io/verdict` and
`kubectl get cm -n NS chaosstream-result-3 -o jsonpath='{.data.verdict\\.txt}'`.
"""

import gzip
from pathlib import Path
from typing import Any, Dict, List, Optional

from chaosstream.timeutil import epoch_iso, now_epoch

__all__ = ["SLOTS", "RESULT_LABEL", "slot_names", "save_result"]

SLOTS = 5
RESULT_LABEL = "app.kubernetes.io/name=chaosstream-result"
# a ConfigMap holds at most 1 MiB; leave room for metadata
_MAX_BYTES = 900_000


def slot_names(slots: int = SLOTS) -> List[str]:
    return [f"chaosstream-result-{i}" for i in range(1, slots + 1)]


def _pick_slot(core: Any, namespace: str, slots: int) -> tuple:
    """(name, existing object or None): an empty slot, else the one saved longest ago."""
    from chaosstream.clients.kube import KubeError

    oldest = None
    for name in slot_names(slots):
        try:
            cm = core.read_namespaced_config_map(name, namespace)
        except KubeError as exc:
            if exc.status == 404:
                return name, None
            raise
        saved = (cm.metadata.annotations or {}).get("chaosstream.io/saved-at", "")
        if oldest is None or saved < oldest[0]:
            oldest = (saved, name, cm)
    assert oldest is not None
    return oldest[1], oldest[2]


def save_result(
    cluster: Any,
    namespace: str,
    files: List[Path],
    verdict_text: str,
    code: int,
    experiment: str,
    job: Optional[str] = None,
    slots: int = SLOTS,
) -> str:
    """Store one run's files in a result ConfigMap; returns its name."""
    from kubernetes import client

    data: Dict[str, str] = {"verdict.txt": verdict_text}
    binary: Dict[str, str] = {}
    import base64

    budget = _MAX_BYTES - len(verdict_text.encode())
    for path in files:
        if not path.exists():
            continue
        raw = path.read_bytes()
        if path.suffix == ".json":  # journals compress ~10x
            packed = gzip.compress(raw)
            if len(packed) * 4 // 3 <= budget:
                binary[path.name + ".gz"] = base64.b64encode(packed).decode()
                budget -= len(packed) * 4 // 3
            continue
        text = raw.decode("utf-8", "replace")
        if len(raw) <= budget:
            data[path.name] = text
            budget -= len(raw)
    name, existing = _pick_slot(cluster.core, namespace, slots)
    saved_at = epoch_iso(now_epoch(), "microseconds")  # fine enough that the oldest is unique
    meta = client.V1ObjectMeta(
        name=name,
        labels={
            "app.kubernetes.io/name": "chaosstream-result",
            "app.kubernetes.io/managed-by": "chaosstream",
            "chaosstream.io/verdict": str(code),
        },
        annotations={
            "chaosstream.io/saved-at": saved_at,
            "chaosstream.io/experiment": experiment[:200],
            "chaosstream.io/job": job or "",
        },
        resource_version=existing.metadata.resource_version if existing is not None else None,
    )
    body = client.V1ConfigMap(
        api_version="v1", kind="ConfigMap", metadata=meta, data=data, binary_data=binary
    )
    if existing is None:
        cluster.core.create_namespaced_config_map(namespace, body)
    else:
        cluster.core.replace_namespaced_config_map(name, namespace, body)
    return name
