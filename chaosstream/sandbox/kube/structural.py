"""Custom resources as the API server stores them: a CRD's structural schema prunes and defaults them.

For a custom resource whose CustomResourceDefinition is installed, a write is reshaped the way
kube-apiserver's apiextensions handler does it:

* with the `status` subresource, a create or a main-resource update ignores the body's `status` (only
  `/status` writes it) — kubernetes.io "Status subresource";
* fields the schema does not declare are dropped ("pruning"), at any depth, unless the schema says
  `x-kubernetes-preserve-unknown-fields: true`; `additionalProperties` schemas apply to every value;
  `apiVersion`, `kind` and `metadata` are always kept;
* missing fields with a `default` get it, inside objects that are present ("defaulting").

Validation (types, patterns, enums, required) is not done here.
"""

from __future__ import annotations

from typing import Any

from .resources import ResourceType

Obj = dict[str, Any]
CRD_KEY = "apiextensions.k8s.io/customresourcedefinitions"


def crd_name(rtype: ResourceType) -> str:
    """`sessions.stream.space` for stream.space/v1alpha1 sessions."""
    return f"{rtype.plural}.{rtype.group}"


def version_of(crd: Obj, version: str) -> Obj | None:
    for entry in (crd.get("spec") or {}).get("versions") or []:
        if entry.get("name") == version:
            return entry
    return None


def has_status_subresource(crd: Obj, version: str) -> bool:
    entry = version_of(crd, version) or {}
    return "status" in (entry.get("subresources") or {})


def schema_of(crd: Obj, version: str) -> Obj | None:
    entry = version_of(crd, version) or {}
    return (entry.get("schema") or {}).get("openAPIV3Schema")


def prune(value: Any, schema: Obj | None) -> Any:
    """`value` without the fields `schema` does not declare (a new object; `value` is not changed)."""
    if schema is None:
        return value
    if isinstance(value, dict):
        if schema.get("x-kubernetes-preserve-unknown-fields") and "properties" not in schema:
            return value
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        out: Obj = {}
        for key, item in value.items():
            if props is not None and key in props:
                out[key] = prune(item, props[key])
            elif isinstance(extra, dict):
                out[key] = prune(item, extra)
            elif extra is True or schema.get("x-kubernetes-preserve-unknown-fields"):
                out[key] = item
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [prune(item, schema["items"]) for item in value]
    return value


def apply_defaults(value: Any, schema: Obj | None) -> Any:
    """Fill `default`s of missing fields, recursively, in objects that are present."""
    if schema is None:
        return value
    if isinstance(value, dict):
        for key, sub in (schema.get("properties") or {}).items():
            if key not in value and "default" in sub:
                value[key] = _copy(sub["default"])
            if key in value:
                value[key] = apply_defaults(value[key], sub)
        return value
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [apply_defaults(item, schema["items"]) for item in value]
    return value


def _copy(value: Any) -> Any:
    import copy

    return copy.deepcopy(value)


def shape(obj: Obj, crd: Obj, version: str, subresource: str | None) -> Obj:
    """The custom resource `obj` as stored: pruned and defaulted per `crd` (see the module docstring).

    `subresource` is "status" for a `/status` write (only `status` is taken from `obj` then)."""
    schema = schema_of(crd, version)
    if schema is None:
        return obj
    props = schema.get("properties") or {}
    out = {k: obj[k] for k in ("apiVersion", "kind", "metadata") if k in obj}
    for key, value in obj.items():
        if key in out:
            continue
        if key in props:
            out[key] = apply_defaults(prune(value, props[key]), props[key])
        elif schema.get("x-kubernetes-preserve-unknown-fields"):
            out[key] = value
    for key, sub in props.items():  # top-level defaults (e.g. a defaulted `spec` object)
        if key not in out and "default" in sub and key not in ("status",):
            out[key] = apply_defaults(_copy(sub["default"]), sub)
    return out


__all__ = ["CRD_KEY", "crd_name", "has_status_subresource", "prune", "apply_defaults", "shape", "schema_of"]
