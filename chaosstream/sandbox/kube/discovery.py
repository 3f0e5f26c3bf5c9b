"""Discovery documents (/version, /api, /apis, resource lists) shaped for the strict pydantic client."""

from __future__ import annotations

from typing import Any

from .resources import BY_GROUP_VERSION, RESOURCES, ResourceType, groups

Obj = dict[str, Any]

VERSION = {
    "major": "1",
    "minor": "32",
    "emulationMajor": "1",
    "emulationMinor": "32",
    "minCompatibilityMajor": "1",
    "minCompatibilityMinor": "31",
    "gitVersion": "v1.32.0-chaosstream-sandbox",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.23.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}

# Subresource discovery entries: (kind, verbs, group, version) – group/version only when they differ.
_SUBRESOURCES: dict[str, tuple[str, list[str], str, str]] = {
    "status": ("", ["get", "patch", "update"], "", ""),
    "scale": ("Scale", ["get", "patch", "update"], "autoscaling", "v1"),
    "exec": ("PodExecOptions", ["create", "get"], "", ""),
    "attach": ("PodAttachOptions", ["create", "get"], "", ""),
    "portforward": ("PodPortForwardOptions", ["create", "get"], "", ""),
    "log": ("Pod", ["get"], "", ""),
    "eviction": ("Eviction", ["create"], "policy", "v1"),
    "ephemeralcontainers": ("Pod", ["get", "patch", "update"], "", ""),
    "finalize": ("Namespace", ["update"], "", ""),
    "token": ("TokenRequest", ["create"], "authentication.k8s.io", "v1"),
}


def _server_addresses(host: str) -> list[Obj]:
    return [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}]


def core_versions(host: str) -> Obj:
    """``/api``: APIVersions (``serverAddressByClientCIDRs`` is required by the client)."""
    return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": _server_addresses(host)}


def api_group(name: str, versions: list[str]) -> Obj:
    """One ``APIGroup`` document."""
    gvs = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"kind": "APIGroup", "apiVersion": "v1", "name": name, "versions": gvs, "preferredVersion": gvs[0]}


def group_list() -> Obj:
    """``/apis``: APIGroupList."""
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [
            {k: v for k, v in api_group(g, vs).items() if k not in ("kind", "apiVersion")}
            for g, vs in groups().items()
        ],
    }


def _resource_entry(r: ResourceType) -> Obj:
    entry: Obj = {
        "name": r.plural,
        "singularName": r.singular,
        "namespaced": r.namespaced,
        "kind": r.kind,
        "verbs": list(r.verbs),
    }
    if r.short_names:
        entry["shortNames"] = list(r.short_names)
    if r.categories:
        entry["categories"] = list(r.categories)
    return entry


def resource_list(api_version: str) -> Obj | None:
    """``/api/v1`` or ``/apis/{group}/{version}``: APIResourceList, or ``None`` when not served."""
    served = BY_GROUP_VERSION.get(api_version)
    if served is None:
        return None
    resources: list[Obj] = []
    for r in served.values():
        resources.append(_resource_entry(r))
        for sub in r.subresources:
            kind, verbs, group, version = _SUBRESOURCES[sub]
            item: Obj = {
                "name": f"{r.plural}/{sub}",
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": kind or r.kind,
                "verbs": verbs,
            }
            if group:
                item["group"], item["version"] = group, version
            resources.append(item)
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": api_version,
        "resources": resources,
    }


def openapi_v2() -> Obj:
    """A minimal swagger document: enough for kubectl's client-side validation to accept any object."""
    definitions: Obj = {}
    for r in RESOURCES:
        name = f"io.k8s.sandbox.{r.group or 'core'}.{r.version}.{r.kind}"
        definitions[name] = {
            "type": "object",
            "x-kubernetes-group-version-kind": [{"group": r.group, "version": r.version, "kind": r.kind}],
        }
    return {
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": VERSION["gitVersion"]},
        "paths": {},
        "definitions": definitions,
    }


def _gv_path(api_version: str) -> str:
    return f"api/{api_version}" if "/" not in api_version else f"apis/{api_version}"


def openapi_v3_root() -> Obj:
    """``/openapi/v3``: one document per group/version."""
    return {
        "paths": {
            _gv_path(gv): {"serverRelativeURL": f"/openapi/v3/{_gv_path(gv)}?hash=sandbox"}
            for gv in BY_GROUP_VERSION
        }
    }


def openapi_v3_group_version(api_version: str) -> Obj | None:
    """A skeletal OpenAPI v3 document: one PATCH operation per kind, advertising ``fieldValidation``.

    That is what kubectl checks before it leaves validation to the server (``--validate=strict``), so
    ``kubectl create/apply`` work without a full schema.
    """
    served = BY_GROUP_VERSION.get(api_version)
    if served is None:
        return None
    paths: Obj = {}
    for r in served.values():
        prefix = f"/{_gv_path(api_version)}" + ("/namespaces/{namespace}" if r.namespaced else "")
        paths[f"{prefix}/{r.plural}/{{name}}"] = {
            "patch": {
                "operationId": f"patch{r.kind}",
                "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": {"group": r.group, "version": r.version, "kind": r.kind},
                "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}],
                "responses": {"200": {"description": "OK"}},
            }
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": VERSION["gitVersion"]},
        "paths": paths,
    }
