"""Typed checks of activity arguments: each refuses with one sentence naming the argument and what to pass.

Chaos Toolkit hands activities whatever the experiment's JSON holds (strings where numbers were meant,
`true` where a name was meant, NaN through `env` conversions), so every public activity checks its
arguments here before it touches anything.
"""

import math
from typing import Any, Iterable, List, Optional

from chaoslib.exceptions import ActivityFailed

__all__ = [
    "seconds",
    "whole",
    "text",
    "flag",
    "choice",
    "port_list",
    "text_list",
    "ArgumentError",
    "is_number",
]

# Longer than any sane fault or wait, short enough that time arithmetic never overflows.
MAX_SECONDS = 7 * 24 * 3600.0


class ArgumentError(ActivityFailed):
    """An activity argument has the wrong type or value; nothing was changed."""


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def seconds(
    value: Any,
    name: str,
    minimum: float = 0.0,
    maximum: float = MAX_SECONDS,
    allow_zero: bool = False,
) -> float:
    """A finite number of seconds, > `minimum` (≥ with `allow_zero`), ≤ `maximum`."""
    if not is_number(value):
        raise ArgumentError(f"Argument '{name}' must be a number of seconds, not {value!r}.")
    if not math.isfinite(value):
        raise ArgumentError(f"Argument '{name}' must be a finite number of seconds, not {value!r}.")
    low_ok = value >= minimum if allow_zero else value > minimum
    if not low_ok:
        sign = "≥" if allow_zero else "greater than"
        raise ArgumentError(f"Argument '{name}' must be {sign} {minimum:g} seconds, not {value!r}.")
    if value > maximum:
        raise ArgumentError(f"Argument '{name}' must be at most {maximum:g} seconds, not {value!r}.")
    return float(value)


def whole(value: Any, name: str, minimum: int = 0, maximum: Optional[int] = None) -> int:
    """A whole number in [minimum, maximum]."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ArgumentError(f"Argument '{name}' must be a whole number ≥ {minimum}, not {value!r}.")
    if value < minimum:
        raise ArgumentError(f"Argument '{name}' must be a whole number ≥ {minimum}, not {value!r}.")
    if maximum is not None and value > maximum:
        raise ArgumentError(f"Argument '{name}' must be at most {maximum}, not {value!r}.")
    return value


def text(value: Any, name: str, required: bool = False, what: str = "a string") -> Optional[str]:
    """A string (stripped); None stays None unless `required`; an empty string is refused."""
    if value is None:
        if required:
            raise ArgumentError(f"Argument '{name}' is required: pass {what}.")
        return None
    if not isinstance(value, str):
        raise ArgumentError(f"Argument '{name}' must be {what}, not {value!r}.")
    cleaned = value.strip()
    if not cleaned:
        raise ArgumentError(f"Argument '{name}' must not be empty: pass {what}.")
    if any(ord(ch) < 32 for ch in cleaned):
        raise ArgumentError(f"Argument '{name}' must not contain control characters.")
    return cleaned


def flag(value: Any, name: str) -> bool:
    """A boolean; the strings "true"/"false" (any case) are accepted, anything else is refused."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ArgumentError(f"Argument '{name}' must be true or false, not {value!r}.")


def choice(value: Any, name: str, options: Iterable[str]) -> str:
    """One of `options`."""
    allowed = list(options)
    if not isinstance(value, str) or value not in allowed:
        raise ArgumentError(f"Argument '{name}' must be one of {', '.join(allowed)}, not {value!r}.")
    return value


def port_list(value: Any, name: str = "ports") -> List[int]:
    """A non-empty list of TCP ports, sorted and without duplicates."""
    if not isinstance(value, list) or not value:
        raise ArgumentError(f"Argument '{name}' must be a non-empty list of TCP ports, e.g. [8000].")
    for port in value:
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise ArgumentError(f"Argument '{name}' must hold TCP port numbers 1–65535, not {port!r}.")
    return sorted(set(value))


def text_list(value: Any, name: str) -> Optional[List[str]]:
    """A list of non-empty strings, or None."""
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ArgumentError(f"Argument '{name}' must be a list of names, not {value!r}.")
    return [v.strip() for v in value]
