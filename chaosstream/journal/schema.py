"""The shapes of a Chaos Toolkit journal, read defensively.

A journal is untrusted JSON: any field may have any type (`run` a string, `activity` a list, `duration`
"slow" or NaN, names with control characters, outputs of many megabytes or nested hundreds of levels
deep). Every accessor here returns the expected type or a neutral default and never raises; every
rendering is bounded in length and depth, so reading a hostile journal costs bounded time and memory.

The names of chaosstream's journal extensions live here too, so that the controls that write them and
the tools that read them agree.
"""

import json
import math
import re
from collections import abc
from typing import Any, Dict, List, Mapping, Optional

__all__ = [
    "TIMELINE_EXTENSION",
    "SAFETY_EXTENSION",
    "PREFLIGHT_EXTENSION",
    "STREAMS_EXTENSION",
    "SECRET_KEY_RE",
    "is_mapping",
    "as_dict",
    "as_list",
    "dicts",
    "get_dict",
    "get_list",
    "get_dicts",
    "get_str",
    "get_number",
    "number",
    "clean_text",
    "xml_text",
    "preview",
    "extension",
    "activity",
    "activity_name",
    "activity_type",
    "exception_text",
    "describe_tolerance",
    "measured",
]

TIMELINE_EXTENSION = "chaosstream-timeline"
SAFETY_EXTENSION = "chaosstream-safety"
PREFLIGHT_EXTENSION = "chaosstream-preflight"
# The stream continuity monitor (actions `monitor_streams`): {"name", "started", "stopped", "report": what
# `stream_continuity` returns, "events": {session: [{"t", "at", "state": up|gap|reconnecting, "reason"?}]}}
STREAMS_EXTENSION = "chaosstream-streams"

# Keys whose values are masked wherever journal values are shown.
SECRET_KEY_RE = re.compile(r"(?i)(token|password|passwd|secret|api[_-]?key|authorization|dsn|credential)")

_SPACE_RE = re.compile("[\t\n\r\x0b\x0c\x85\u2028\u2029]+")  # line breaks and tabs: one space
_CONTROL_RE = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f]+")  # other control characters: dropped
_SURROGATE_RE = re.compile("[\ud800-\udfff]")
# XML 1.0 allows #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF].
_XML_FORBIDDEN_RE = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_MAX_EXCEPTION_CHARS = 4000


# -- containers ---------------------------------------------------------------------------------------
def is_mapping(value: Any) -> bool:
    """A mapping (JSON object); the exact-type test first, as it is the common and the cheap case."""
    return type(value) is dict or isinstance(value, abc.Mapping)


def as_dict(value: Any) -> Mapping[str, Any]:
    """`value` if it is a mapping, else an empty one."""
    return value if is_mapping(value) else {}


def as_list(value: Any) -> List[Any]:
    """`value` if it is a list (or tuple), else an empty list."""
    if isinstance(value, list):
        return value
    return list(value) if isinstance(value, tuple) else []


def dicts(value: Any) -> List[Mapping[str, Any]]:
    """The mappings in a list (other entries are skipped)."""
    return [item for item in as_list(value) if is_mapping(item)]


def get_dict(obj: Any, key: str) -> Mapping[str, Any]:
    return as_dict(as_dict(obj).get(key))


def get_list(obj: Any, key: str) -> List[Any]:
    return as_list(as_dict(obj).get(key))


def get_dicts(obj: Any, key: str) -> List[Mapping[str, Any]]:
    return dicts(as_dict(obj).get(key))


def get_str(obj: Any, key: str, default: str = "", limit: int = 200) -> str:
    """A string field, cleaned of control characters and bounded; numbers are shown, anything else is
    `default`."""
    value = as_dict(obj).get(key)
    if isinstance(value, str):
        return clean_text(value, limit) if value else default
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return preview(value, limit)
    return default


def number(value: Any) -> Optional[float]:
    """A finite float, or None (for bools, strings, NaN, infinities, anything else)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        result = float(value)
    except (OverflowError, ValueError):
        return None
    return result if math.isfinite(result) else None


def get_number(obj: Any, key: str) -> Optional[float]:
    return number(as_dict(obj).get(key))


# -- text ---------------------------------------------------------------------------------------------
def clean_text(text: Any, limit: Optional[int] = None) -> str:
    """Printable one-line text: line breaks and tabs become one space, other control characters (escape
    sequences, NUL, bell, ...) are dropped, lone surrogates (JSON allows them, UTF-8 does not) become
    U+FFFD; cut to `limit` characters with `...`."""
    if not isinstance(text, str):
        text = preview(text, limit or 300)
    if limit is not None and len(text) > limit:
        text = text[: max(limit - 3, 0)] + "..."
    text = _SPACE_RE.sub(" ", _CONTROL_RE.sub("", text))
    return _SURROGATE_RE.sub("\ufffd", text)


def xml_text(text: Any) -> str:
    """Text that XML 1.0 can carry: the characters it forbids (most control characters, lone
    surrogates, U+FFFE/U+FFFF) are stripped."""
    return _XML_FORBIDDEN_RE.sub("", text if isinstance(text, str) else preview(text))


def preview(value: Any, limit: int = 300, depth: int = 6, mask: bool = True) -> str:
    """A short JSON-like rendering of any value, bounded in length (`limit`) and nesting (`depth`), with
    the values of secret-looking keys masked. Strings at the top level are shown as they are."""
    if isinstance(value, str):
        return value if len(value) <= limit else value[: max(limit - 3, 0)] + "..."
    parts: List[str] = []
    budget = [limit + 1]

    def put(text: str) -> bool:
        if budget[0] <= 0:
            return False
        parts.append(text[: budget[0]])
        budget[0] -= len(text)
        return budget[0] > 0

    def walk(item: Any, level: int) -> bool:
        if isinstance(item, str):
            return put(json.dumps(item[: budget[0]]))
        if item is None or isinstance(item, bool):
            return put(json.dumps(item))
        if isinstance(item, int):
            try:
                return put(str(item))
            except ValueError:  # more digits than int->str allows
                return put("<huge integer>")
        if isinstance(item, float):
            return put(json.dumps(item))  # NaN/Infinity as JSON5 spells them
        if isinstance(item, (list, tuple)):
            if level >= depth:
                return put("[...]")
            if not put("["):
                return False
            for index, element in enumerate(item):
                if (index and not put(", ")) or not walk(element, level + 1):
                    return False
            return put("]")
        if is_mapping(item):
            if level >= depth:
                return put("{...}")
            if not put("{"):
                return False
            for index, (key, element) in enumerate(item.items()):
                name = key if isinstance(key, str) else type(key).__name__
                if (index and not put(", ")) or not put(json.dumps(name[: budget[0]]) + ": "):
                    return False
                if mask and element and SECRET_KEY_RE.search(name[:200]):
                    if not put('"***"'):
                        return False
                elif not walk(element, level + 1):
                    return False
            return put("}")
        return put(f"<{type(item).__name__}>")

    walk(value, 0)
    text = "".join(parts)
    return text if len(text) <= limit else text[: max(limit - 3, 0)] + "..."


# -- journal shapes -------------------------------------------------------------------------------------
def extension(journal: Any, name: str) -> Optional[Mapping[str, Any]]:
    """The journal extension called `name` (the first one), or None."""
    for ext in get_dicts(journal, "extensions"):
        if ext.get("name") == name:
            return ext
    return None


def activity(run: Any) -> Mapping[str, Any]:
    """The activity of a run entry (an empty mapping if it is missing or not a mapping)."""
    return get_dict(run, "activity")


def activity_name(run: Any, default: str = "<unnamed>") -> str:
    """The run's activity name, printable and bounded."""
    return get_str(activity(run), "name", default) or default


def activity_type(run: Any) -> Optional[str]:
    """'probe' or 'action' (None when missing or anything else)."""
    kind = activity(run).get("type")
    return kind if kind in ("probe", "action") else None


def exception_text(run: Any) -> str:
    """The last line chaoslib recorded for a failed activity: `Type: message` (chained tracebacks and
    source lines before it are not the error's sentence). Bounded; may contain control characters."""
    exc = as_dict(run).get("exception")
    if isinstance(exc, str):
        items: List[Any] = [exc]
    else:
        items = as_list(exc)
    for item in reversed(items):
        if isinstance(item, str) and item.strip():
            text = item.strip()
            return text if len(text) <= _MAX_EXCEPTION_CHARS else text[:_MAX_EXCEPTION_CHARS] + "..."
    return ""


def describe_tolerance(tolerance: Any) -> Any:
    """A short, readable form of a tolerance: probe tolerances as `func(arg=value, ...)` without the
    `value` chaoslib injects into their arguments; other tolerances as they are."""
    if is_mapping(tolerance) and tolerance.get("type") == "probe":
        provider = as_dict(tolerance.get("provider"))
        arguments = as_dict(provider.get("arguments"))
        shown = ", ".join(
            f"{clean_text(str(k), 60)}={preview(v, 80)}" for k, v in arguments.items() if k != "value"
        )
        func = get_str(provider, "func") or get_str(tolerance, "name") or "probe"
        return f"{func}({shown})"
    return tolerance


def measured(run: Any, with_tolerance: bool = False, max_keys: int = 20) -> Dict[str, str]:
    """What a run measured, as short printable strings: the keys of a mapping output (or `value`), the
    tolerance if asked, and `duration_s`. Secret-looking keys are masked; at most `max_keys` keys."""
    values: Dict[str, str] = {}
    run = as_dict(run)
    output = run.get("output")
    if is_mapping(output):
        for index, (key, value) in enumerate(output.items()):
            if index >= max_keys:
                values["..."] = f"{len(output) - max_keys} more keys"
                break
            name = clean_text(key if isinstance(key, str) else preview(key, 60), 60)
            values[name] = "***" if value and SECRET_KEY_RE.search(name) else clean_text(preview(value), 300)
    elif output is not None:
        values["value"] = clean_text(preview(output), 300)
    if with_tolerance:
        values["tolerance"] = clean_text(preview(describe_tolerance(activity(run).get("tolerance"))), 300)
    duration = number(run.get("duration"))
    if duration is not None:
        values["duration_s"] = preview(round(duration, 3))
    return values
