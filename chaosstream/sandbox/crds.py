"""The chart's CustomResourceDefinitions `sessions.stream.space` and `templates.stream.space` (v1alpha1).

Their structural schemas as `chart/crds/stream.space_sessions.yaml` and `stream.space_templates.yaml`
declare them (fields, types, enums and defaults; descriptions and patterns left out), with the `status`
subresource (sessions.yaml:111-112). The emulator reshapes every Session and Template with them
(kube/structural.py): e.g. the agent's `spec.resources.{cpu,memory}` is pruned, as the schema only has
`resources.{limits,requests}` (sessions.yaml:35-56), and a created CR loses its `status`.
"""

from typing import Any, Dict, List

__all__ = ["crd_objects"]

Obj = Dict[str, Any]
_S: Obj = {"type": "string"}
_QUANTITY: Obj = {"anyOf": [{"type": "integer"}, {"type": "string"}], "x-kubernetes-int-or-string": True}
_CONDITION: Obj = {
    "type": "object",
    "properties": {k: dict(_S) for k in ("type", "status", "lastTransitionTime", "reason", "message")},
}

SESSION_SCHEMA: Obj = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "required": ["user", "template", "state"],
            "properties": {
                "user": dict(_S),
                "template": dict(_S),
                "state": {"type": "string", "enum": ["running", "hibernated", "terminated"]},
                "resources": {
                    "type": "object",
                    "properties": {
                        "limits": {"type": "object", "additionalProperties": dict(_QUANTITY)},
                        "requests": {"type": "object", "additionalProperties": dict(_QUANTITY)},
                    },
                },
                "persistentHome": {"type": "boolean", "default": True},
                "idleTimeout": {"type": "string", "default": "30m"},
                "maxSessionDuration": {"type": "string", "default": "8h"},
            },
        },
        "status": {
            "type": "object",
            "properties": {
                "phase": {
                    "type": "string",
                    "enum": ["Pending", "Running", "Hibernated", "Failed", "Terminated"],
                },
                "podName": dict(_S),
                "url": dict(_S),
                "lastActivity": {"type": "string", "format": "date-time"},
                "resourceUsage": {"type": "object", "properties": {"memory": dict(_S), "cpu": dict(_S)}},
                "conditions": {"type": "array", "items": _CONDITION},
            },
        },
    },
}

TEMPLATE_SCHEMA: Obj = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "required": ["displayName", "baseImage"],
            "properties": {
                "displayName": dict(_S),
                "description": dict(_S),
                "category": dict(_S),
                "icon": dict(_S),
                "baseImage": dict(_S),
                "defaultResources": {
                    "type": "object",
                    "properties": {
                        "memory": {"type": "string", "default": "2Gi"},
                        "cpu": {"type": "string", "default": "1000m"},
                    },
                },
                "ports": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "name": dict(_S),
                            "containerPort": {"type": "integer"},
                            "protocol": {"type": "string", "default": "TCP"},
                        },
                    },
                },
                "env": {
                    "type": "array",
                    "items": {"type": "object", "properties": {"name": dict(_S), "value": dict(_S)}},
                },
                "volumeMounts": {
                    "type": "array",
                    "items": {"type": "object", "properties": {"name": dict(_S), "mountPath": dict(_S)}},
                },
                "vnc": {
                    "type": "object",
                    "properties": {
                        "enabled": {"type": "boolean", "default": True},
                        "port": {"type": "integer", "default": 3000},
                    },
                },
                "capabilities": {
                    "type": "array",
                    "items": {"type": "string", "enum": ["Network", "Audio", "Clipboard", "USB", "Printing"]},
                },
                "tags": {"type": "array", "items": dict(_S)},
            },
        },
        "status": {"type": "object", "properties": {"valid": {"type": "boolean"}, "message": dict(_S)}},
    },
}


def _crd(plural: str, kind: str, short: str, schema: Obj, columns: List[Obj]) -> Obj:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.stream.space"},
        "spec": {
            "group": "stream.space",
            "scope": "Namespaced",
            "names": {"plural": plural, "singular": kind.lower(), "kind": kind, "shortNames": [short]},
            "versions": [
                {
                    "name": "v1alpha1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": schema},
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                }
            ],
        },
    }


def _col(name: str, path: str, kind: str = "string") -> Obj:
    return {"name": name, "type": kind, "jsonPath": path}


def crd_objects() -> List[Obj]:
    """The two CRDs, as `helm install` puts them in the cluster (chart/crds/)."""
    age = _col("Age", ".metadata.creationTimestamp", "date")
    return [
        _crd(
            "sessions",
            "Session",
            "ss",
            SESSION_SCHEMA,
            [
                _col("User", ".spec.user"),
                _col("Template", ".spec.template"),
                _col("State", ".spec.state"),
                _col("Phase", ".status.phase"),
                _col("URL", ".status.url"),
                age,
            ],
        ),
        _crd(
            "templates",
            "Template",
            "tpl",
            TEMPLATE_SCHEMA,
            [
                _col("Display Name", ".spec.displayName"),
                _col("Category", ".spec.category"),
                _col("Image", ".spec.baseImage"),
                _col("Memory", ".spec.defaultResources.memory"),
                _col("Valid", ".status.valid", "boolean"),
                age,
            ],
        ),
    ]
