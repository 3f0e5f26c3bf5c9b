"""Label and field selectors: parsing (400 on malformed input) and matching."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

from .errors import bad_request

_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_REQ = re.compile(
    r"^\s*(?P<neg>!)?\s*(?P<key>[^\s=!(),]+)\s*"
    r"(?:(?P<op>==|=|!=)\s*(?P<val>[^\s=!(),]*)|\s(?P<setop>in|notin)\s*\((?P<set>[^()]*)\))?\s*$"
)


@dataclass(frozen=True)
class Requirement:
    """One clause of a label selector."""

    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!"
    values: frozenset[str] = frozenset()

    def matches(self, labels: dict[str, str]) -> bool:
        """Whether ``labels`` satisfy this clause (Kubernetes semantics: ``!=``/notin match a missing key)."""
        present = self.key in labels
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        if self.op in ("=", "in"):
            return present and labels[self.key] in self.values
        return not present or labels[self.key] not in self.values


def _split_top_level(text: str) -> list[str]:
    # Commas inside "in (a,b)" do not separate requirements.
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise bad_request(f"unable to parse requirement: unbalanced parenthesis in {text!r}")
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if depth:
        raise bad_request(f"unable to parse requirement: unbalanced parenthesis in {text!r}")
    parts.append("".join(cur))
    return parts


def _check_key(key: str, text: str) -> None:
    if len(key) > 316 or not _KEY.match(key):
        raise bad_request(f"unable to parse requirement: invalid label key {key!r} in selector {text!r}")


def _check_value(value: str, text: str) -> None:
    if len(value) > 63 or not _VALUE.match(value):
        raise bad_request(f"unable to parse requirement: invalid label value {value!r} in selector {text!r}")


def parse_label_selector(text: str | None) -> tuple[Requirement, ...]:
    """Parse ``app=web,tier!=db,env in (a,b),!legacy``; an empty selector matches everything."""
    if not text or not text.strip():
        return ()
    reqs = []
    for part in _split_top_level(text):
        m = _REQ.match(part)
        if not m or not part.strip():
            raise bad_request(f"unable to parse requirement: found {part!r} in label selector {text!r}")
        key = m.group("key")
        _check_key(key, text)
        if m.group("neg"):
            if m.group("op") or m.group("setop"):
                raise bad_request(f"unable to parse requirement: unexpected operator after '!' in {text!r}")
            reqs.append(Requirement(key, "!"))
        elif m.group("op"):
            value = m.group("val") or ""
            _check_value(value, text)
            reqs.append(Requirement(key, "!=" if m.group("op") == "!=" else "=", frozenset((value,))))
        elif m.group("setop"):
            values = [v.strip() for v in m.group("set").split(",")]
            for v in values:
                _check_value(v, text)
            reqs.append(Requirement(key, m.group("setop"), frozenset(values)))
        else:
            reqs.append(Requirement(key, "exists"))
    return tuple(reqs)


def selector_from_match(selector: dict[str, Any] | None) -> tuple[Requirement, ...]:
    """Requirements from a ``LabelSelector`` object (``matchLabels`` + ``matchExpressions``)."""
    if not selector:
        return ()
    reqs = [Requirement(k, "=", frozenset((str(v),))) for k, v in (selector.get("matchLabels") or {}).items()]
    ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
    for expr in selector.get("matchExpressions") or []:
        reqs.append(Requirement(expr["key"], ops[expr["operator"]], frozenset(expr.get("values") or ())))
    return tuple(reqs)


def labels_match(reqs: tuple[Requirement, ...], labels: dict[str, str] | None) -> bool:
    """Whether all requirements hold for ``labels``."""
    if not reqs:
        return True
    labels = labels or {}
    return all(r.matches(labels) for r in reqs)


def format_selector(selector: dict[str, Any] | None) -> str:
    """``LabelSelector`` object rendered as the string form (used by ``Scale.status.selector``)."""
    if not selector:
        return ""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        op, key, vals = expr["operator"], expr["key"], ",".join(sorted(expr.get("values") or ()))
        parts.append(
            {"In": f"{key} in ({vals})", "NotIn": f"{key} notin ({vals})", "Exists": key}.get(op, f"!{key}")
        )
    return ",".join(parts)


FieldGetter = Callable[[dict[str, Any]], str]


def _field_value(obj: dict[str, Any], path: str) -> str:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(part)
    if path == "source" and isinstance(cur, dict):  # events: "source" compares against the component
        cur = cur.get("component")
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


@dataclass(frozen=True)
class FieldRequirement:
    """One ``path=value`` / ``path!=value`` clause of a field selector."""

    path: str
    negate: bool
    value: str

    def matches(self, obj: dict[str, Any]) -> bool:
        """Compare the object's field (missing fields read as "")."""
        return (_field_value(obj, self.path) == self.value) != self.negate


def parse_field_selector(text: str | None, allowed: tuple[str, ...]) -> tuple[FieldRequirement, ...]:
    """Parse ``metadata.name=x,status.phase!=Running``; unknown fields give 400 like the apiserver."""
    if not text or not text.strip():
        return ()
    out = []
    for part in text.split(","):
        m = re.match(r"^\s*([A-Za-z0-9_.]+)\s*(==|=|!=)\s*([^,]*?)\s*$", part)
        if not m:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
        path, op, value = m.groups()
        if path not in ("metadata.name", "metadata.namespace") and path not in allowed:
            raise bad_request(f"field label not supported: {path}")
        out.append(FieldRequirement(path, op == "!=", value))
    return tuple(out)


def fields_match(reqs: tuple[FieldRequirement, ...], obj: dict[str, Any]) -> bool:
    """Whether all field clauses hold for ``obj``."""
    return all(r.matches(obj) for r in reqs)
