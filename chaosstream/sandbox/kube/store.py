"""In-memory object store: one dict per resource and namespace, resourceVersions and watch fan-out.

The store is owned by the emulator's event loop; nothing here is locked.  Stored objects are never
mutated in place (every write stores a fresh dict), so the cached JSON of an entry stays valid and
watch events can reference the stored dict without copying it.
"""

from __future__ import annotations

import asyncio
import copy
import json
import secrets
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Callable, Iterator

from . import defaults, structural
from .errors import ApiError, already_exists, bad_request, conflict, not_found
from .resources import NAMESPACE, ResourceType
from .selectors import FieldRequirement, Requirement, fields_match, labels_match

Obj = dict[str, Any]
Listener = Callable[[str, ResourceType, Obj, "Obj | None"], None]

HISTORY_PER_RESOURCE = 2000
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def now_iso() -> str:
    """RFC 3339 UTC timestamp with second precision (``metav1.Time``)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def random_suffix(n: int = 5) -> str:
    """Random suffix from the alphabet Kubernetes uses for generated names."""
    return "".join(secrets.choice(_NAME_ALPHABET) for _ in range(n))


def dumps(obj: Any) -> bytes:
    """Compact JSON bytes."""
    return json.dumps(obj, separators=(",", ":")).encode()


def clone(obj: Obj) -> Obj:
    """Deep copy of a JSON-like dict."""
    return copy.deepcopy(obj)


class Entry:
    """A stored object plus its JSON encoding, computed once on first read."""

    __slots__ = ("obj", "_raw")

    def __init__(self, obj: Obj) -> None:
        self.obj = obj
        self._raw: bytes | None = None

    @property
    def raw(self) -> bytes:
        """JSON bytes of the object (cached: stored objects are immutable)."""
        if self._raw is None:
            self._raw = dumps(self.obj)
        return self._raw


@dataclass(eq=False)
class Watcher:
    """An open watch: what it filters on and the queue its events go to (``None`` ends it)."""

    rtype: ResourceType
    namespace: str | None
    labels: tuple[Requirement, ...]
    fields: tuple[FieldRequirement, ...]
    queue: asyncio.Queue[tuple[str, Entry] | None] = field(default_factory=asyncio.Queue)

    def matches(self, obj: Obj | None) -> bool:
        """Whether ``obj`` is inside this watch's scope and selectors."""
        if obj is None:
            return False
        meta = obj["metadata"]
        if self.namespace is not None and meta.get("namespace") != self.namespace:
            return False
        return labels_match(self.labels, meta.get("labels")) and fields_match(self.fields, obj)

    def offer(self, etype: str, entry: Entry, old: Obj | None) -> None:
        """Queue the event as the watcher sees it (an object leaving the selector reads as DELETED)."""
        now_in = self.matches(entry.obj) if etype != "DELETED" else False
        was_in = self.matches(old) if old is not None else False
        if etype == "DELETED":
            if self.matches(entry.obj):
                self.queue.put_nowait(("DELETED", entry))
        elif now_in and not was_in:
            self.queue.put_nowait(("ADDED", entry))
        elif now_in:
            self.queue.put_nowait(("MODIFIED", entry))
        elif was_in:
            self.queue.put_nowait(("DELETED", entry))


class Store:
    """Objects by resource key → namespace ("" for cluster-scoped) → name."""

    def __init__(self) -> None:
        self._data: dict[str, dict[str, dict[str, Entry]]] = {}
        self._rv = 1
        self._history: dict[str, deque[tuple[int, str, Entry, Obj | None]]] = {}
        self._history_floor: dict[str, int] = {}
        self._watchers: dict[str, set[Watcher]] = {}
        self._owned: dict[str, set[tuple[str, str, str]]] = {}
        self._types: dict[str, ResourceType] = {}
        self.listeners: list[Listener] = []

    # ---- reads -------------------------------------------------------------------------------
    @property
    def resource_version(self) -> str:
        """The current (latest) resourceVersion."""
        return str(self._rv)

    def entry(self, rtype: ResourceType, namespace: str | None, name: str) -> Entry | None:
        """Stored entry or ``None``."""
        return self._data.get(rtype.key, {}).get(namespace or "", {}).get(name)

    def get(self, rtype: ResourceType, namespace: str | None, name: str) -> Obj | None:
        """The stored object (do not mutate it) or ``None``."""
        e = self.entry(rtype, namespace, name)
        return e.obj if e else None

    def require(self, rtype: ResourceType, namespace: str | None, name: str) -> Entry:
        """Stored entry or 404 NotFound."""
        e = self.entry(rtype, namespace, name)
        if e is None:
            raise not_found(rtype.plural, rtype.group, name)
        return e

    def iter(self, rtype: ResourceType, namespace: str | None = None) -> Iterator[Entry]:
        """Entries of a resource, in one namespace or all of them."""
        by_ns = self._data.get(rtype.key, {})
        if namespace is not None and rtype.namespaced:
            yield from by_ns.get(namespace, {}).values()
            return
        for names in by_ns.values():
            yield from names.values()

    def list(
        self,
        rtype: ResourceType,
        namespace: str | None = None,
        labels: tuple[Requirement, ...] = (),
        fields: tuple[FieldRequirement, ...] = (),
    ) -> list[Entry]:
        """Matching entries sorted by namespace/name, as etcd returns them."""
        out = [
            e
            for e in self.iter(rtype, namespace)
            if labels_match(labels, e.obj["metadata"].get("labels")) and fields_match(fields, e.obj)
        ]
        out.sort(key=lambda e: (e.obj["metadata"].get("namespace", ""), e.obj["metadata"]["name"]))
        return out

    def owned_by(self, uid: str, rtype: ResourceType | None = None) -> list[Obj]:
        """Objects whose ownerReferences name ``uid`` (optionally only of one resource)."""
        out = []
        for key, ns, name in list(self._owned.get(uid, ())):
            if rtype is not None and key != rtype.key:
                continue
            e = self._data.get(key, {}).get(ns, {}).get(name)
            if e is not None:
                out.append(e.obj)
        return out

    def namespace_exists(self, name: str) -> bool:
        """Whether the Namespace object exists."""
        return self.entry(NAMESPACE, None, name) is not None

    # ---- writes ------------------------------------------------------------------------------
    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def create(self, rtype: ResourceType, namespace: str | None, obj: Obj) -> Obj:
        """Store a new object: fills namespace, uid, resourceVersion, creationTimestamp, generation."""
        if not isinstance(obj, dict):
            raise bad_request("the body of the request must be an object")
        obj = clone(obj)
        obj["apiVersion"], obj["kind"] = rtype.api_version, rtype.kind
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise bad_request("metadata must be an object")
        ns = ""
        if rtype.namespaced:
            body_ns = meta.get("namespace")
            if namespace and body_ns and body_ns != namespace:
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            ns = namespace or body_ns or "default"
            if not self.namespace_exists(ns):
                raise not_found("namespaces", "", ns)
            ns_obj = self.get(NAMESPACE, None, ns)
            if rtype.kind == "Pod" and rtype.group == "":
                from .podsecurity import check_pod

                check_pod(ns_obj, meta.get("name") or meta.get("generateName", ""), obj.get("spec") or {})
            if ns_obj and ns_obj["metadata"].get("deletionTimestamp"):
                raise ApiError(
                    403,
                    "Forbidden",
                    f'{rtype.plural} "{meta.get("name", "")}" is forbidden: unable to create new content in '
                    f"namespace {ns} because it is being terminated",
                )
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        names = self._data.setdefault(rtype.key, {}).setdefault(ns, {})
        if not meta.get("name"):
            prefix = meta.get("generateName")
            if not prefix:
                raise ApiError(
                    422,
                    "Invalid",
                    f'{rtype.kind} "" is invalid: metadata.name: Required value: '
                    "name or generateName is required",
                )
            name = prefix + random_suffix()
            while name in names:
                name = prefix + random_suffix()
            meta["name"] = name
        name = meta["name"]
        if name in names:
            raise already_exists(rtype.plural, rtype.group, name)
        defaults.validate_name(rtype, name)
        for k in ("deletionTimestamp", "deletionGracePeriodSeconds", "resourceVersion", "selfLink"):
            meta.pop(k, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_iso()
        meta["generation"] = 1
        if rtype.has_status and not rtype.crd and rtype.plural not in ("namespaces", "nodes"):
            obj.pop("status", None)  # status is set by controllers, not by create (except CR/ns/node)
        if rtype.crd:
            obj = self._shape_custom(rtype, obj, None, creating=True)
        defaults.on_create(rtype, obj)
        if rtype.plural == "persistentvolumeclaims":
            self._provision(obj)
        meta["resourceVersion"] = self._next_rv()
        entry = Entry(obj)
        names[name] = entry
        self._index_owners(rtype, None, obj)
        self._emit("ADDED", rtype, entry, None)
        return obj

    def update(
        self,
        rtype: ResourceType,
        namespace: str | None,
        name: str,
        new: Obj,
        subresource: str | None = None,
    ) -> Obj:
        """Replace an object (PUT semantics) honouring the status subresource and resourceVersion.

        ``new`` becomes owned by the store.  A write that changes nothing keeps the resourceVersion and
        emits no event, like the apiserver (it also stops controllers from looping on their own writes).
        """
        old_entry = self.require(rtype, namespace, name)
        old = old_entry.obj
        if not isinstance(new, dict):
            raise bad_request("the body of the request must be an object")
        new_meta = new.get("metadata") or {}
        if new_meta.get("name") not in (None, name):
            raise bad_request(
                f"the name of the object ({new_meta.get('name')}) does not match the name on the URL ({name})"
            )
        want_rv = new_meta.get("resourceVersion")
        if want_rv and want_rv != old["metadata"]["resourceVersion"]:
            raise conflict(rtype.plural, rtype.group, name)
        if subresource == "status":
            result = dict(old)
            result["metadata"] = dict(old["metadata"])
            if "status" in new:
                result["status"] = new["status"]
            else:
                result.pop("status", None)
            if rtype.crd:
                result = self._shape_custom(rtype, result, "status")
        else:
            result = new
            result["apiVersion"], result["kind"] = rtype.api_version, rtype.kind
            meta = result["metadata"] = dict(new_meta)
            for k in (
                "uid",
                "creationTimestamp",
                "namespace",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
            ):
                if k in old["metadata"]:
                    meta[k] = old["metadata"][k]
                else:
                    meta.pop(k, None)
            meta["name"] = name
            if rtype.has_status and rtype.plural not in ("namespaces",):
                if "status" in old:
                    result["status"] = old["status"]
                else:
                    result.pop("status", None)
            if rtype.crd:
                result = self._shape_custom(rtype, result, None)
            defaults.on_update(rtype, result, old)
            if _spec_of(result) != _spec_of(old):
                meta["generation"] = int(old["metadata"].get("generation", 1)) + 1
        result["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        if result == old:
            return old
        result["metadata"]["resourceVersion"] = self._next_rv()
        entry = Entry(result)
        self._data[rtype.key][(namespace or "") if rtype.namespaced else ""][name] = entry
        self._index_owners(rtype, old, result)
        self._emit("MODIFIED", rtype, entry, old)
        return result

    def _provision(self, claim: Obj) -> None:
        """StorageClasses, once the cluster has any: a claim without a class gets the default one (the
        DefaultStorageClass admission plugin); a claim naming a class that does not exist stays Pending
        (the PV controller: `storageclass.storage.k8s.io "<name>" not found`). A cluster without any
        StorageClass object binds every claim at once (the emulator's plain mode)."""
        classes = self._data.get("storage.k8s.io/storageclasses", {}).get("", {})
        if not classes:
            return
        spec = claim.setdefault("spec", {})
        name = spec.get("storageClassName")
        if name is None:
            default = [
                n
                for n, e in sorted(classes.items())
                if (e.obj["metadata"].get("annotations") or {}).get(
                    "storageclass.kubernetes.io/is-default-class"
                )
                == "true"
            ]
            if default:
                spec["storageClassName"] = name = default[0]
        if name and name not in classes:
            spec.pop("volumeName", None)
            claim["status"] = {"phase": "Pending"}

    def _shape_custom(
        self, rtype: ResourceType, obj: Obj, subresource: str | None, creating: bool = False
    ) -> Obj:
        """A custom resource as its installed CRD stores it (structural.py); unchanged without a CRD."""
        entry = self._data.get(structural.CRD_KEY, {}).get("", {}).get(structural.crd_name(rtype))
        if entry is None:
            return obj
        crd = entry.obj
        if creating and structural.has_status_subresource(crd, rtype.version):
            obj = dict(obj)
            obj.pop("status", None)  # only /status writes it
        return structural.shape(obj, crd, rtype.version, subresource)

    def put_system(self, rtype: ResourceType, obj: Obj) -> Obj:
        """Store a system-side rewrite as-is (deletionTimestamp, nodeName, ephemeral containers...).

        No user-facing rules apply; only the resourceVersion is bumped.  ``obj`` becomes owned by the store.
        """
        meta = obj["metadata"]
        ns = (meta.get("namespace") or "") if rtype.namespaced else ""
        old = self.require(rtype, ns or None, meta["name"]).obj
        meta["resourceVersion"] = self._next_rv()
        entry = Entry(obj)
        self._data[rtype.key][ns][meta["name"]] = entry
        self._index_owners(rtype, old, obj)
        self._emit("MODIFIED", rtype, entry, old)
        return obj

    def remove(self, rtype: ResourceType, namespace: str | None, name: str) -> Obj:
        """Drop an object for good and emit DELETED (with a fresh resourceVersion)."""
        ns = (namespace or "") if rtype.namespaced else ""
        names = self._data.get(rtype.key, {}).get(ns, {})
        old_entry = names.pop(name, None)
        if old_entry is None:
            raise not_found(rtype.plural, rtype.group, name)
        final = dict(old_entry.obj)
        final["metadata"] = dict(final["metadata"], resourceVersion=self._next_rv())
        self._index_owners(rtype, old_entry.obj, None)
        self._emit("DELETED", rtype, Entry(final), old_entry.obj)
        return final

    def _index_owners(self, rtype: ResourceType, old: Obj | None, new: Obj | None) -> None:
        def uids(o: Obj | None) -> set[str]:
            return {r.get("uid", "") for r in (o or {}).get("metadata", {}).get("ownerReferences") or []}

        ref_of = new or old
        assert ref_of is not None
        ref = (rtype.key, ref_of["metadata"].get("namespace", ""), ref_of["metadata"]["name"])
        before, after = uids(old), uids(new)
        for uid in before - after:
            self._owned.get(uid, set()).discard(ref)
        for uid in after - before:
            self._owned.setdefault(uid, set()).add(ref)

    # ---- watch -------------------------------------------------------------------------------
    def _emit(self, etype: str, rtype: ResourceType, entry: Entry, old: Obj | None) -> None:
        rv = int(entry.obj["metadata"]["resourceVersion"])
        hist = self._history.setdefault(rtype.key, deque())
        if len(hist) >= HISTORY_PER_RESOURCE:
            self._history_floor[rtype.key] = hist.popleft()[0]
        hist.append((rv, etype, entry, old))
        for w in self._watchers.get(rtype.key, ()):
            w.offer(etype, entry, old)
        for listener in self.listeners:
            listener(etype, rtype, entry.obj, old)

    def watch(self, watcher: Watcher, since: str | None) -> None:
        """Register a watcher and queue its initial events.

        ``since`` empty or "0": synthetic ADDED for every matching object; otherwise replay what happened
        after that resourceVersion, or 410 Gone when it is older than the kept history.
        """
        if not since or since == "0":
            for e in self.list(watcher.rtype, watcher.namespace, watcher.labels, watcher.fields):
                watcher.queue.put_nowait(("ADDED", e))
        else:
            try:
                rv = int(since)
            except ValueError:
                raise bad_request(f"invalid resource version {since!r}") from None
            if rv < self._history_floor.get(watcher.rtype.key, 0):
                raise ApiError(410, "Expired", f"too old resource version: {rv} ({self._rv})")
            for hrv, etype, entry, old in self._history.get(watcher.rtype.key, ()):
                if hrv > rv:
                    watcher.offer(etype, entry, old)
        self._watchers.setdefault(watcher.rtype.key, set()).add(watcher)

    def unwatch(self, watcher: Watcher) -> None:
        """Forget a watcher."""
        self._watchers.get(watcher.rtype.key, set()).discard(watcher)

    def close_watchers(self) -> None:
        """End every open watch (on shutdown)."""
        for ws in self._watchers.values():
            for w in ws:
                w.queue.put_nowait(None)
        self._watchers.clear()


def _spec_of(obj: Obj) -> Obj:
    # Everything except metadata/status/type info counts as "spec" for the generation bump.
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}
