"""core/v1 Event objects, deduplicated like the client-go recorder (count / lastTimestamp)."""

from __future__ import annotations

import secrets
from collections import deque
from typing import TYPE_CHECKING, Any

from .resources import EVENT
from .store import now_iso

if TYPE_CHECKING:
    from .store import Store

Obj = dict[str, Any]

MAX_EVENTS = 1000  # oldest events are dropped beyond this (a real cluster expires them after 1 h)

# Which component reports which reason, so `kubectl get events` reads like a real cluster.
_SOURCES = {
    "Scheduled": "default-scheduler",
    "FailedScheduling": "default-scheduler",
    "ScalingReplicaSet": "deployment-controller",
    "SuccessfulCreate": "replicaset-controller",
    "SuccessfulDelete": "replicaset-controller",
}


class EventRecorder:
    """Creates or bumps Event objects in the involved object's namespace."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._by_key: dict[tuple[str, str, str, str, str], str] = {}
        self._order: deque[tuple[str, str]] = deque()

    def record(self, obj: Obj, reason: str, message: str, type: str = "Normal", component: str = "") -> None:
        """Record one occurrence; the same (object, reason, message) again increments ``count``."""
        meta = obj.get("metadata") or {}
        ns = meta.get("namespace") or "default"
        if not self._store.namespace_exists(ns):
            return
        component = component or _SOURCES.get(reason, "kubelet")
        if obj.get("kind") == "StatefulSet" and reason.startswith("Successful"):
            component = "statefulset-controller"
        key = (ns, meta.get("uid", ""), reason, message, type)
        stamp = now_iso()
        name = self._by_key.get(key)
        existing = self._store.get(EVENT, ns, name) if name else None
        if existing is not None:
            updated = dict(existing, count=int(existing.get("count", 1)) + 1, lastTimestamp=stamp)
            updated["metadata"] = dict(existing["metadata"])
            self._store.update(EVENT, ns, existing["metadata"]["name"], updated)
            return
        name = f"{meta.get('name', 'unknown')}.{secrets.token_hex(8)}"
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": ns},
            "involvedObject": {
                "apiVersion": obj.get("apiVersion", "v1"),
                "kind": obj.get("kind", ""),
                "name": meta.get("name", ""),
                "namespace": meta.get("namespace", ""),
                "uid": meta.get("uid", ""),
                "resourceVersion": meta.get("resourceVersion", ""),
            },
            "reason": reason,
            "message": message,
            "type": type,
            "count": 1,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "source": {
                "component": component,
                **({"host": "sandbox-node"} if component == "kubelet" else {}),
            },
            "reportingComponent": component,
            "reportingInstance": "sandbox-node" if component == "kubelet" else "",
        }
        if not meta.get("namespace"):
            event["involvedObject"].pop("namespace")
        self._store.create(EVENT, ns, event)
        self._by_key[key] = name
        self._order.append((ns, name))
        while len(self._order) > MAX_EVENTS:
            old_ns, old_name = self._order.popleft()
            old = self._store.get(EVENT, old_ns, old_name)
            if old is not None:
                self._store.remove(EVENT, old_ns, old_name)
        if len(self._by_key) > 4 * MAX_EVENTS:  # keep the dedupe index bounded too
            live = {n for _, n in self._order}
            self._by_key = {k: v for k, v in self._by_key.items() if v in live}
