"""Per-user quota as StreamSpace v2 enforces it at session creation (profile ``as-built``).

``api/internal/api/handlers.go:727-777`` sums the user's rows in ``running``/``starting``/``hibernated``/
``waking`` and asks ``quota.Enforcer.CheckSessionCreation`` (``api/internal/quota/enforcer.go:190-206``
default limits; ``CheckSessionCreation``
(the total-CPU message at ``:305-308``) runs its checks in the order below). ``GetUserLimits`` looks the user up with
``GetUserByUsername`` (``api/internal/db/users.go:226-236``), which loads no quota row and no groups, so
every user gets the defaults; an unknown user fails the lookup and the handler answers 403 as well.
"""

import re
from typing import Iterable, Mapping, Optional

__all__ = ["DEFAULT_LIMITS", "parse_quantity", "quota_refusal", "COUNTED_STATES"]

DEFAULT_LIMITS = {
    "max_sessions": 5,
    "max_cpu_per_session": 2000,  # millicores
    "max_memory_per_session": 4096,  # MiB
    "max_total_cpu": 4000,
    "max_total_memory": 8192,
}
COUNTED_STATES = ("running", "starting", "hibernated", "waking")  # handlers.go: `pending` is not counted

_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)([a-zA-Z]*)$")
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
_DECIMAL = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


def parse_quantity(text: str, kind: str) -> Optional[int]:
    """Millicores for ``cpu``, MiB for ``memory`` (``quota.ParseResourceQuantity``); None if unparsable."""
    match = _QUANTITY.match(text.strip())
    if not match:
        return None
    number, suffix = float(match.group(1)), match.group(2)
    if kind == "cpu":
        if suffix == "m":
            return int(number)
        if suffix in _DECIMAL:
            return int(number * _DECIMAL[suffix] * 1000)
        return None
    if suffix in _BINARY:
        value = number * _BINARY[suffix]
    elif suffix in _DECIMAL:
        value = number * _DECIMAL[suffix]
    else:
        return None
    return int(value) // (1024 * 1024)


def quota_refusal(
    user_known: bool, cpu: str, memory: str, sessions: Iterable[Mapping[str, object]]
) -> Optional[str]:
    """The enforcer's error message for a new ``cpu``/``memory`` session, or None when it is allowed."""
    if not user_known:
        return "failed to get user limits: failed to get user: user not found"
    limits = DEFAULT_LIMITS
    active, total_cpu, total_memory = 0, 0, 0
    for row in sessions:
        if row.get("state") not in COUNTED_STATES:
            continue
        active += 1
        total_cpu += parse_quantity(str(row.get("cpu") or ""), "cpu") or 0
        total_memory += parse_quantity(str(row.get("memory") or ""), "memory") or 0
    requested_cpu = parse_quantity(cpu, "cpu") or 0
    requested_memory = parse_quantity(memory, "memory") or 0
    if active >= limits["max_sessions"]:
        return f"session quota exceeded: {active}/{limits['max_sessions']} sessions active"
    if requested_cpu > limits["max_cpu_per_session"]:
        return (
            f"CPU quota exceeded: requested {requested_cpu}m, "
            f"limit is {limits['max_cpu_per_session']}m per session"
        )
    if requested_memory > limits["max_memory_per_session"]:
        return (
            f"memory quota exceeded: requested {requested_memory}Mi, "
            f"limit is {limits['max_memory_per_session']}Mi per session"
        )
    if total_cpu + requested_cpu > limits["max_total_cpu"]:
        return (
            f"total CPU quota exceeded: would use {total_cpu + requested_cpu}m, "
            f"limit is {limits['max_total_cpu']}m"
        )
    if total_memory + requested_memory > limits["max_total_memory"]:
        return (
            f"total memory quota exceeded: would use {total_memory + requested_memory}Mi, "
            f"limit is {limits['max_total_memory']}Mi"
        )
    return None
