"""Defaulting and the few validations the sandbox relies on (names, pod specs, workload selectors)."""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

from .errors import invalid
from .resources import ResourceType
from .selectors import labels_match, selector_from_match

Obj = dict[str, Any]

_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_WORKLOADS = ("deployments", "replicasets", "statefulsets")


def validate_name(rtype: ResourceType, name: str) -> None:
    """422 Invalid unless ``name`` is a DNS-1123 subdomain (events and nodes included)."""
    if len(name) > 253 or not _SUBDOMAIN.match(name):
        raise invalid(
            rtype.kind,
            rtype.group,
            name,
            "metadata.name",
            f"Invalid value: {name!r}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
            "characters, '-' or '.', and must start and end with an alphanumeric character",
        )


def default_pod_spec(spec: Obj) -> None:
    """Fill the pod spec defaults the apiserver adds (stable, so template hashes do not drift)."""
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for c in spec.get(key) or []:
            image = str(c.get("image", ""))
            tag_is_latest = ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest")
            c.setdefault("imagePullPolicy", "Always" if tag_is_latest else "IfNotPresent")
            c.setdefault("terminationMessagePath", "/dev/termination-log")
            c.setdefault("terminationMessagePolicy", "File")
            if key != "ephemeralContainers":
                c.setdefault("resources", {})
            for p in c.get("ports") or []:
                p.setdefault("protocol", "TCP")


def _validate_pod_spec(kind: str, group: str, name: str, spec: Any, path: str) -> None:
    if not isinstance(spec, dict) or not spec.get("containers"):
        raise invalid(kind, group, name, f"{path}.containers", "Required value")
    seen: set[str] = set()
    for i, c in enumerate(spec["containers"] + (spec.get("initContainers") or [])):
        if not isinstance(c, dict) or not c.get("name"):
            raise invalid(kind, group, name, f"{path}.containers[{i}].name", "Required value")
        if not c.get("image"):
            raise invalid(kind, group, name, f"{path}.containers[{i}].image", "Required value")
        if c["name"] in seen:
            raise invalid(
                kind, group, name, f"{path}.containers[{i}].name", f"Duplicate value: {c['name']!r}"
            )
        seen.add(c["name"])


def _workload(rtype: ResourceType, obj: Obj) -> None:
    spec = obj.setdefault("spec", {})
    name = obj["metadata"]["name"]
    spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    if rtype.plural == "deployments":
        spec.setdefault("progressDeadlineSeconds", 600)
        strategy = spec.setdefault("strategy", {"type": "RollingUpdate"})
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            ru = strategy.setdefault("rollingUpdate", {})
            ru.setdefault("maxSurge", "25%")
            ru.setdefault("maxUnavailable", "25%")
    if rtype.plural == "statefulsets":
        spec.setdefault("podManagementPolicy", "OrderedReady")
        spec.setdefault("updateStrategy", {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
    template = spec.get("template")
    if not isinstance(template, dict):
        raise invalid(rtype.kind, rtype.group, name, "spec.template", "Required value")
    _validate_pod_spec(rtype.kind, rtype.group, name, template.get("spec"), "spec.template.spec")
    default_pod_spec(template["spec"])
    selector = spec.get("selector")
    if not selector:
        raise invalid(rtype.kind, rtype.group, name, "spec.selector", "Required value")
    labels = (template.get("metadata") or {}).get("labels") or {}
    if not labels_match(selector_from_match(selector), labels):
        raise invalid(
            rtype.kind,
            rtype.group,
            name,
            "spec.template.metadata.labels",
            f"Invalid value: {labels!r}: `selector` does not match template `labels`",
        )


def _cluster_ip(uid: str) -> str:
    h = hashlib.sha256(uid.encode()).digest()
    return f"10.96.{h[0]}.{max(h[1], 1)}"


def on_create(rtype: ResourceType, obj: Obj) -> None:
    """Defaults and validation for a new object (metadata already filled)."""
    meta = obj["metadata"]
    p = rtype.plural
    if p == "pods":
        _validate_pod_spec("Pod", "", meta["name"], obj.get("spec"), "spec")
        default_pod_spec(obj["spec"])
        obj["spec"].setdefault("serviceAccountName", "default")
        obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
    elif p in _WORKLOADS:
        _workload(rtype, obj)
        # V1ReplicaSetStatus / V1StatefulSetStatus require "replicas" in the strict client.
        obj["status"] = {} if p == "deployments" else {"replicas": 0}
    elif p == "services":
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        if spec.get("clusterIP") != "None":
            spec["clusterIP"] = spec.get("clusterIP") or _cluster_ip(meta["uid"])
        spec.setdefault("clusterIPs", [spec["clusterIP"]])
        spec.setdefault("sessionAffinity", "None")
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
        for port in spec.get("ports") or []:
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
        obj["status"] = {"loadBalancer": {}}
    elif p == "secrets":
        _secret(obj)
    elif p == "namespaces":
        meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]
        obj["spec"] = {"finalizers": ["kubernetes"]}
        obj["status"] = {"phase": "Active"}
    elif p == "customresourcedefinitions":
        # the apiextensions controller accepts the names and establishes the CRD at once
        spec = obj.get("spec") or {}
        obj["status"] = {
            "acceptedNames": dict(spec.get("names") or {}),
            "storedVersions": [v["name"] for v in spec.get("versions") or [] if v.get("storage")],
            "conditions": [
                {"type": t, "status": "True", "reason": r, "lastTransitionTime": meta["creationTimestamp"]}
                for t, r in (("NamesAccepted", "NoConflicts"), ("Established", "InitialNamesAccepted"))
            ],
        }
    elif p == "persistentvolumeclaims":
        spec = obj.setdefault("spec", {})
        spec.setdefault("volumeMode", "Filesystem")
        spec["volumeName"] = f"pvc-{meta['uid']}"
        requests = (spec.get("resources") or {}).get("requests") or {}
        # The sandbox has no provisioner: claims bind at once so session workloads do not stall.
        obj["status"] = {
            "phase": "Bound",
            "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
            "capacity": {"storage": requests.get("storage", "1Gi")},
        }


def on_update(rtype: ResourceType, new: Obj, old: Obj) -> None:
    """Defaults and immutability rules for a main-resource write (PUT or PATCH)."""
    p = rtype.plural
    name = old["metadata"]["name"]
    if p == "pods":
        spec = new.get("spec")
        _validate_pod_spec("Pod", "", name, spec, "spec")
        default_pod_spec(spec)
        old_spec = old["spec"]
        # Ephemeral containers change only through their subresource.
        if "ephemeralContainers" in old_spec:
            spec["ephemeralContainers"] = old_spec["ephemeralContainers"]
        else:
            spec.pop("ephemeralContainers", None)
        if _pod_spec_mutable_view(spec) != _pod_spec_mutable_view(old_spec):
            raise invalid(
                "Pod",
                "",
                name,
                "spec",
                "Forbidden: pod updates may not change fields other than `spec.containers[*].image`, "
                "`spec.initContainers[*].image`, `spec.activeDeadlineSeconds`, "
                "`spec.tolerations` (only additions to existing tolerations)",
            )
    elif p in _WORKLOADS:
        _workload(rtype, new)
        if new["spec"].get("selector") != old["spec"].get("selector"):
            raise invalid(rtype.kind, rtype.group, name, "spec.selector", "Invalid value: field is immutable")
    elif p == "secrets":
        _secret(new)
    elif p == "services":
        spec = new.setdefault("spec", {})
        old_ip = old.get("spec", {}).get("clusterIP")
        if old_ip:
            spec["clusterIP"] = old_ip
            spec.setdefault("clusterIPs", [old_ip])
        for port in spec.get("ports") or []:
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))


def _pod_spec_mutable_view(spec: Obj) -> Obj:
    view = {k: v for k, v in spec.items() if k not in ("activeDeadlineSeconds", "tolerations", "nodeName")}
    for key in ("containers", "initContainers"):
        if key in view:
            view[key] = [{k: v for k, v in c.items() if k != "image"} for c in view[key]]
    return view


def _secret(obj: Obj) -> None:
    obj.setdefault("type", "Opaque")
    string_data = obj.pop("stringData", None)
    if string_data:
        data = obj.setdefault("data", {})
        for k, v in string_data.items():
            data[k] = base64.b64encode(str(v).encode()).decode()


__all__ = ["default_pod_spec", "on_create", "on_update", "validate_name"]
