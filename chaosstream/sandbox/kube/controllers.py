"""Controller manager: turns store changes into queued reconcile calls, run one at a time on the loop.

Also holds the small built-in controllers: garbage collection of dependents, namespace termination and
final removal of objects whose finalizers are gone.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Callable

from .batch import reconcile_cronjob, reconcile_job, tick
from .resources import BY_KEY, NAMESPACE, POD, REPLICASET, RESOURCES, ResourceType
from .workloads import controller_of, reconcile_deployment, reconcile_replicaset, reconcile_statefulset

if TYPE_CHECKING:
    from .cluster import Cluster

Obj = dict[str, Any]
Key = tuple[str, str, str]
log = logging.getLogger(__name__)


class ControllerManager:
    """A de-duplicating work queue of ``(controller, namespace, name)`` keys and the loop that drains it."""

    def __init__(self, emu: Cluster) -> None:
        self.emu = emu
        self._queue: dict[Key, None] = {}
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self.handlers: dict[str, Callable[[str, str], None]] = {
            "deployment": lambda ns, n: reconcile_deployment(emu, ns, n),
            "replicaset": lambda ns, n: reconcile_replicaset(emu, ns, n),
            "statefulset": lambda ns, n: reconcile_statefulset(emu, ns, n),
            "pod": lambda ns, n: emu.kubelet.reconcile(ns, n),
            "gc": self._collect_dependents,
            "namespace": lambda _ns, n: self._terminate_namespace(n),
            "finalize": self._finalize,
            "job": lambda ns, n: reconcile_job(emu, ns, n),
            "cronjob": lambda ns, n: reconcile_cronjob(emu, ns, n),
            "cron-tick": lambda _ns, _n: tick(emu),
        }
        self._ticker: asyncio.Task[None] | None = None

    # ---- queue -------------------------------------------------------------------------------
    def enqueue(self, controller: str, namespace: str, name: str) -> None:
        """Schedule a reconcile (duplicates collapse until it runs)."""
        self._queue[(controller, namespace, name)] = None
        if self._wake is not None:
            self._wake.set()

    def enqueue_after(self, delay: float, controller: str, namespace: str, name: str) -> None:
        """Schedule a reconcile ``delay`` seconds from now."""
        asyncio.get_running_loop().call_later(delay, self.enqueue, controller, namespace, name)

    def start(self) -> None:
        """Start draining the queue on the running loop."""
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run())
        self._ticker = asyncio.get_running_loop().create_task(self._tick())
        if self._queue:
            self._wake.set()

    async def _tick(self) -> None:
        while True:  # CronJob schedules are checked every second
            self.enqueue("cron-tick", "", "")
            await asyncio.sleep(1.0)

    async def stop(self) -> None:
        """Stop the worker."""
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
            self._ticker = None
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def drain(self) -> None:
        """Run every queued reconcile now (and whatever they enqueue), bounded to avoid livelock."""
        for _ in range(10_000):
            if not self._queue:
                return
            key = next(iter(self._queue))
            del self._queue[key]
            try:
                self.handlers[key[0]](key[1], key[2])
            except Exception:  # one broken object must not stop the other controllers
                log.exception("controller %s failed for %s/%s", *key)

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            self.drain()
            await asyncio.sleep(0)  # let HTTP handlers run between bursts

    # ---- routing -----------------------------------------------------------------------------
    def on_change(self, etype: str, rtype: ResourceType, obj: Obj, old: Obj | None) -> None:
        """Store listener: map a change to the controllers that care."""
        meta = obj["metadata"]
        ns, name = meta.get("namespace", ""), meta["name"]
        plural = rtype.plural
        if rtype.group == "apps" and plural in ("deployments", "replicasets", "statefulsets"):
            self.enqueue(plural[:-1], ns, name)
        if plural == "pods":
            if etype == "DELETED":
                self.emu.kubelet.forget(obj)
            else:
                self.enqueue("pod", ns, name)
        if rtype.group == "batch" and plural in ("jobs", "cronjobs") and etype != "DELETED":
            self.enqueue(plural[:-1], ns, name)
        if plural == "pods":
            ref = controller_of(obj)
            if ref is not None and ref.get("kind") == "Job":
                self.enqueue("job", ns, ref.get("name", ""))
        if plural in ("replicasets", "pods"):
            ref = controller_of(obj)
            if ref is not None:
                kind = {"Deployment": "deployment", "ReplicaSet": "replicaset", "StatefulSet": "statefulset"}
                if ref.get("kind") in kind:
                    self.enqueue(kind[ref["kind"]], ns, ref.get("name", ""))
                if etype == "DELETED" and ref.get("kind") == "ReplicaSet":
                    # A Recreate rollout waits for old pods to be gone, which the RS status does not show.
                    rs = self.emu.store.get(REPLICASET, ns, ref.get("name", ""))
                    owner = controller_of(rs) if rs is not None else None
                    if owner is not None and owner.get("kind") == "Deployment":
                        self.enqueue("deployment", ns, owner.get("name", ""))
        if etype == "DELETED":
            self.enqueue("gc", ns, meta.get("uid", ""))
        elif meta.get("deletionTimestamp"):
            if plural == "namespaces":
                self.enqueue("namespace", "", name)
            elif not meta.get("finalizers"):
                self.enqueue("finalize", rtype.key, f"{ns}/{name}")
        if plural == "pods" and ns and etype != "ADDED":
            ns_obj = self.emu.store.get(NAMESPACE, None, ns)
            if ns_obj is not None and ns_obj["metadata"].get("deletionTimestamp"):
                self.enqueue("namespace", "", ns)

    # ---- built-in controllers ----------------------------------------------------------------
    def _collect_dependents(self, _namespace: str, uid: str) -> None:
        # Background propagation: dependents of a deleted owner are deleted too.
        for dep in self.emu.store.owned_by(uid):
            refs = dep["metadata"].get("ownerReferences") or []
            if any(r.get("uid") == uid for r in refs) and not dep["metadata"].get("deletionTimestamp"):
                rtype = BY_KEY.get(_key_of(dep))
                if rtype is not None:
                    self.emu.delete(rtype, dep["metadata"].get("namespace"), dep["metadata"]["name"])

    def _finalize(self, key: str, ref: str) -> None:
        rtype = BY_KEY[key]
        ns, name = ref.split("/", 1)
        obj = self.emu.store.get(rtype, ns or None, name)
        if obj is None or not obj["metadata"].get("deletionTimestamp") or obj["metadata"].get("finalizers"):
            return
        if rtype is POD and not self.emu.kubelet.can_remove(obj):
            return  # the node is still stopping it; its stop task enqueues us again
        self.emu.store.remove(rtype, ns or None, name)

    def _terminate_namespace(self, name: str) -> None:
        store = self.emu.store
        ns_obj = store.get(NAMESPACE, None, name)
        if ns_obj is None or not ns_obj["metadata"].get("deletionTimestamp"):
            return
        remaining = 0
        for rtype in RESOURCES:
            if not rtype.namespaced:
                continue
            for entry in list(store.iter(rtype, name)):
                remaining += 1
                if not entry.obj["metadata"].get("deletionTimestamp"):
                    self.emu.delete(rtype, name, entry.obj["metadata"]["name"])
        if remaining == 0 or not any(True for r in RESOURCES if r.namespaced for _ in store.iter(r, name)):
            store.remove(NAMESPACE, None, name)
        else:
            self.enqueue_after(0.1, "namespace", "", name)


def _key_of(obj: Obj) -> str:
    api_version = obj.get("apiVersion", "v1")
    group = api_version.split("/")[0] if "/" in api_version else ""
    for rtype in RESOURCES:
        if rtype.group == group and rtype.kind == obj.get("kind"):
            return rtype.key
    return ""


__all__ = ["ControllerManager"]
