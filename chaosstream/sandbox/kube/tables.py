"""Server-side ``Table`` rendering (``Accept: ...;as=Table``), so ``kubectl get`` shows real columns."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Callable

from .resources import ResourceType

Obj = dict[str, Any]
Column = tuple[str, Callable[[Obj], Any]]


def _age(stamp: str | None) -> str:
    if not stamp:
        return "<unknown>"
    then = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    secs = max(0, int((datetime.now(UTC) - then).total_seconds()))
    if secs < 120:
        return f"{secs}s"
    if secs < 7200:
        return f"{secs // 60}m{secs % 60}s" if secs < 600 else f"{secs // 60}m"
    if secs < 172800:
        return f"{secs // 3600}h"
    return f"{secs // 86400}d"


def _pod_ready(p: Obj) -> str:
    statuses = (p.get("status") or {}).get("containerStatuses") or []
    return f"{sum(1 for s in statuses if s.get('ready'))}/{len(p['spec'].get('containers') or [])}"


def _pod_status(p: Obj) -> str:
    if p["metadata"].get("deletionTimestamp"):
        return "Terminating"
    status = p.get("status") or {}
    for s in status.get("containerStatuses") or []:
        waiting = (s.get("state") or {}).get("waiting")
        if waiting and waiting.get("reason"):
            return str(waiting["reason"])
    return str(status.get("reason") or status.get("phase") or "Unknown")


def _restarts(p: Obj) -> int:
    return sum(int(s.get("restartCount", 0)) for s in (p.get("status") or {}).get("containerStatuses") or [])


def _status(o: Obj, key: str) -> Any:
    return (o.get("status") or {}).get(key, 0) or 0


def _involved(e: Obj) -> str:
    ref = e.get("involvedObject") or {}
    return f"{str(ref.get('kind', '')).lower()}/{ref.get('name', '')}"


_AGE: Column = ("Age", lambda o: _age(o["metadata"].get("creationTimestamp")))
_COLUMNS: dict[str, list[Column]] = {
    "pods": [
        ("Ready", _pod_ready),
        ("Status", _pod_status),
        ("Restarts", _restarts),
        _AGE,
        ("IP", lambda p: (p.get("status") or {}).get("podIP", "<none>")),
        ("Node", lambda p: p["spec"].get("nodeName", "<none>")),
    ],
    "deployments": [
        ("Ready", lambda d: f"{_status(d, 'readyReplicas')}/{d['spec'].get('replicas', 1)}"),
        ("Up-to-date", lambda d: _status(d, "updatedReplicas")),
        ("Available", lambda d: _status(d, "availableReplicas")),
        _AGE,
    ],
    "replicasets": [
        ("Desired", lambda r: r["spec"].get("replicas", 1)),
        ("Current", lambda r: _status(r, "replicas")),
        ("Ready", lambda r: _status(r, "readyReplicas")),
        _AGE,
    ],
    "statefulsets": [
        ("Ready", lambda s: f"{_status(s, 'readyReplicas')}/{s['spec'].get('replicas', 1)}"),
        _AGE,
    ],
    "events": [
        ("Last Seen", lambda e: _age(e.get("lastTimestamp"))),
        ("Type", lambda e: e.get("type", "")),
        ("Reason", lambda e: e.get("reason", "")),
        ("Object", _involved),
        ("Message", lambda e: e.get("message", "")),
    ],
    "namespaces": [("Status", lambda n: (n.get("status") or {}).get("phase", "")), _AGE],
    "nodes": [
        ("Status", lambda n: "Ready"),
        ("Roles", lambda n: "control-plane"),
        _AGE,
        ("Version", lambda n: "v1.32.0"),
    ],
    "services": [
        ("Type", lambda s: s["spec"].get("type", "")),
        ("Cluster-IP", lambda s: s["spec"].get("clusterIP", "")),
        (
            "Ports",
            lambda s: (
                ",".join(f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in s["spec"].get("ports") or [])
                or "<none>"
            ),
        ),
        _AGE,
    ],
}


def wants_table(accept: str) -> bool:
    """Whether the client asked for the Table form (kubectl get does)."""
    return "as=Table" in accept


def table(rtype: ResourceType, items: list[Obj], resource_version: str, cont: str | None = None) -> Obj:
    """A ``meta.k8s.io/v1`` Table of ``items`` with the same leading columns the real printers use."""
    columns = _COLUMNS.get(rtype.plural, [_AGE])
    name_col: Column = ("Name", lambda o: o["metadata"]["name"])
    # Events lead with "Last Seen" and show the name only with -o wide, like the real printer.
    columns = [*columns, name_col] if rtype.plural == "events" else [name_col, *columns]
    wide = {"IP", "Node"} | ({"Name"} if rtype.plural == "events" else set())
    defs = [
        {
            "name": n,
            "type": "string",
            "format": "name" if n == "Name" else "",
            "description": n,
            "priority": 1 if n in wide else 0,
        }
        for n, _ in columns
    ]
    rows = []
    for o in items:
        rows.append(
            {
                "cells": [fn(o) for _, fn in columns],
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": o["metadata"],
                },
            }
        )
    meta: Obj = {"resourceVersion": resource_version}
    if cont:
        meta["continue"] = cont
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "columnDefinitions": defs,
        "rows": rows,
    }
