"""PATCH bodies: RFC 6902 JSON patch, RFC 7386 merge patch and Kubernetes strategic merge patch."""

from __future__ import annotations

import copy
from typing import Any

from .errors import ApiError, bad_request

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"

# List fields merged by key (field name -> merge key) as in the k8s.io/api patchMergeKey tags.
# "ports" is resolved per element: containerPort for container ports, port for Service ports.
MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "env": "name",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "ownerReferences": "uid",
    "conditions": "type",
    "ports": "containerPort",
    "resourceClaims": "name",
}
# Lists of scalars whose strategy is "merge" (a set union), e.g. metadata.finalizers.
PRIMITIVE_MERGE_LISTS = {"finalizers"}


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise ApiError(422, "Invalid", f"invalid JSON pointer {path!r}")
    return [_unescape(t) for t in path[1:].split("/")]


def _resolve_parent(doc: Any, tokens: list[str], path: str) -> tuple[Any, str]:
    cur = doc
    for tok in tokens[:-1]:
        cur = _child(cur, tok, path)
    return cur, tokens[-1]


def _child(cur: Any, tok: str, path: str) -> Any:
    if isinstance(cur, dict):
        if tok not in cur:
            raise ApiError(
                422,
                "Invalid",
                f"the server rejected our request due to an error in our request: "
                f"doc is missing path: {path!r}",
            )
        return cur[tok]
    if isinstance(cur, list):
        return cur[_index(cur, tok, path, allow_end=False)]
    raise ApiError(422, "Invalid", f"doc is missing path: {path!r}")


def _index(lst: list[Any], tok: str, path: str, allow_end: bool) -> int:
    if tok == "-" and allow_end:
        return len(lst)
    if not tok.isdigit() or (len(tok) > 1 and tok[0] == "0"):
        raise ApiError(422, "Invalid", f"invalid array index {tok!r} in {path!r}")
    i = int(tok)
    if i > len(lst) or (i == len(lst) and not allow_end):
        raise ApiError(422, "Invalid", f"array index out of bounds in {path!r}")
    return i


def _get(doc: Any, path: str) -> Any:
    cur = doc
    for tok in _pointer(path):
        cur = _child(cur, tok, path)
    return cur


def _add(doc: Any, path: str, value: Any) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return value
    parent, last = _resolve_parent(doc, tokens, path)
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, path, allow_end=True), value)
    else:
        raise ApiError(422, "Invalid", f"cannot add at {path!r}")
    return doc


def _remove(doc: Any, path: str) -> tuple[Any, Any]:
    tokens = _pointer(path)
    if not tokens:
        raise ApiError(422, "Invalid", "cannot remove the document root")
    parent, last = _resolve_parent(doc, tokens, path)
    if isinstance(parent, dict):
        if last not in parent:
            raise ApiError(422, "Invalid", f"unable to remove nonexistent key: {last}: missing value")
        return doc, parent.pop(last)
    if isinstance(parent, list):
        return doc, parent.pop(_index(parent, last, path, allow_end=False))
    raise ApiError(422, "Invalid", f"cannot remove {path!r}")


def apply_json_patch(doc: Any, ops: Any) -> Any:
    """Apply RFC 6902 operations to a deep copy of ``doc``; errors are 422 like the apiserver."""
    if not isinstance(ops, list):
        raise bad_request("json patch must be a list of operations")
    doc = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise bad_request(f"invalid json patch operation: {op!r}")
        kind, path = op["op"], op["path"]
        if kind == "add":
            doc = _add(doc, path, copy.deepcopy(op.get("value")))
        elif kind == "remove":
            doc, _ = _remove(doc, path)
        elif kind == "replace":
            _get(doc, path)  # must exist
            if _pointer(path):
                doc, _ = _remove(doc, path)
            doc = _add(doc, path, copy.deepcopy(op.get("value")))
        elif kind == "move":
            doc, value = _remove(doc, op["from"])
            doc = _add(doc, path, value)
        elif kind == "copy":
            doc = _add(doc, path, copy.deepcopy(_get(doc, op["from"])))
        elif kind == "test":
            if _get(doc, path) != op.get("value"):
                raise ApiError(422, "Invalid", f"testing value {path} failed: test operation failed")
        else:
            raise bad_request(f"unexpected json patch operation {kind!r}")
    return doc


def apply_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: maps merge recursively, ``null`` deletes, anything else replaces (lists included)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = apply_merge_patch(result.get(key), value)
    return result


def _merge_key_for(field: str, items: list[Any]) -> str | None:
    key = MERGE_KEYS.get(field)
    if field == "ports":
        # Service ports merge on "port", container ports on "containerPort".
        for item in items:
            if isinstance(item, dict) and "containerPort" not in item and "port" in item:
                return "port"
    return key


def apply_strategic_merge_patch(target: Any, patch: Any) -> Any:
    """Kubernetes strategic merge patch for built-in types.

    Lists listed in ``MERGE_KEYS`` merge element-wise by their key; ``{"$patch": "delete"}`` removes an
    element, ``{"$patch": "replace"}`` replaces a map or list; ``$deleteFromPrimitiveList/<f>`` and
    ``$setElementOrder/<f>`` are honoured/ignored; other lists are replaced like a merge patch.
    """
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$setElementOrder/") or key in ("$patch", "$retainKeys"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            drop = set(map(str, value or []))
            result[field] = [v for v in result.get(field) or [] if str(v) not in drop]
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            merged = apply_strategic_merge_patch(result.get(key), value)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list):
            result[key] = _merge_list(key, result.get(key), value)
        else:
            result[key] = value
    return result


def _merge_list(field: str, current: Any, patch: list[Any]) -> list[Any]:
    current = current if isinstance(current, list) else []
    if any(isinstance(p, dict) and p.get("$patch") == "replace" for p in patch):
        return [copy.deepcopy(p) for p in patch if not (isinstance(p, dict) and p.get("$patch") == "replace")]
    if field in PRIMITIVE_MERGE_LISTS:
        return current + [v for v in patch if v not in current]
    merge_key = _merge_key_for(field, patch + current)
    if merge_key is None or not all(isinstance(p, dict) for p in patch):
        return [copy.deepcopy(p) for p in patch]
    result = list(current)
    for item in patch:
        key = item.get(merge_key)
        idx = next(
            (i for i, cur in enumerate(result) if isinstance(cur, dict) and cur.get(merge_key) == key), None
        )
        if item.get("$patch") == "delete":
            if idx is not None:
                result.pop(idx)
            continue
        if idx is None:
            result.append(apply_strategic_merge_patch({}, item))
        else:
            result[idx] = apply_strategic_merge_patch(result[idx], item)
    return result
