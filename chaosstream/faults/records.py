"""What a fault records in the cluster (labels, annotations) and the in-memory view of one record."""

import dataclasses
import os
import socket
import uuid
from typing import Any, Dict, Optional

from chaosstream.timeutil import parse_time, utcnow

__all__ = [
    "MANAGED_BY",
    "MANAGED_BY_SELECTOR",
    "PARTITION_ANNOTATION_PREFIX",
    "PARTITION_LABEL",
    "TARGET_LABEL",
    "EXPIRES_ANNOTATION",
    "PREVIOUS_REPLICAS_ANNOTATION",
    "OWNER_ANNOTATION",
    "RECORD_LABEL",
    "RUN_ID",
    "Fault",
]

MANAGED_BY = {"app.kubernetes.io/managed-by": "chaosstream"}
MANAGED_BY_SELECTOR = "app.kubernetes.io/managed-by=chaosstream"
PARTITION_ANNOTATION_PREFIX = "chaosstream.io/partition-"
PARTITION_LABEL = "chaosstream.io/partition"
TARGET_LABEL = "chaosstream.io/partition-target"  # on the one pod a NetworkPolicy partition selects
EXPIRES_ANNOTATION = "chaosstream.io/expires-at"
PREVIOUS_REPLICAS_ANNOTATION = "chaosstream.io/previous-replicas"
OWNER_ANNOTATION = "chaosstream.io/owner"
RECORD_LABEL = "chaosstream.io/record"  # on a ConfigMap that records what a run made (value: "sessions")
# The run that injects a fault (one `chaos run` process): its rollbacks undo only what it made.
RUN_ID = f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"


@dataclasses.dataclass
class Fault:
    """One fault left in the cluster: `kind` is "partition", "networkpolicy", "scaledown" or "sessions"
    (a run's session record: `target` is the ConfigMap, `record` holds the session ids and the API)."""

    kind: str
    namespace: str
    target: str  # pod, NetworkPolicy or Deployment name
    fault_id: str  # partition id, or the Deployment name for a scale-down
    expires_at: Optional[str]
    record: Dict[str, Any] = dataclasses.field(default_factory=dict)
    obj: Any = None
    owner: Optional[str] = None  # RUN_ID of the run that made it (None: made by an older chaosstream)

    def expired(self) -> bool:
        expiry = parse_time(self.expires_at)
        return expiry is None or expiry <= utcnow()
