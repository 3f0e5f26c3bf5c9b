"""Wait loops with early exit: they return as soon as the condition holds and say how long it took.

Chaos Toolkit does not enforce activity timeouts for Python providers, so every wait-probe bounds
itself with its own `timeout`.
"""

import logging
import time
from typing import Any, Callable, Optional, Tuple, TypeVar

from chaoslib.exceptions import ActivityFailed

from chaosstream.arguments import seconds

__all__ = ["wait_until", "poll_interval_of", "PROGRESS_EVERY", "agents_progress", "mapping_progress"]

T = TypeVar("T")
logger = logging.getLogger("chaostoolkit")
# A wait says what it sees at INFO this often, so a long wait is never silent.
PROGRESS_EVERY = 10.0


def poll_interval_of(settings: object, poll_interval: Optional[float]) -> float:
    """The probe's own `poll_interval` if given (validated), else configuration `streamspace_poll_interval`."""
    if poll_interval is None:
        return float(settings.poll_interval)
    return seconds(poll_interval, "poll_interval")


def wait_until(
    check: Callable[[], Tuple[bool, T]],
    timeout: float,
    interval: float,
    describe_timeout: Callable[[Optional[T]], str],
    progress: Optional[Callable[[Optional[T]], str]] = None,
    every: float = PROGRESS_EVERY,
) -> Tuple[T, float, int]:
    """Call `check` until it returns (True, value); return (value, elapsed seconds, polls).

    `check` raising `ActivityFailed` stops the wait at once (the probe could not measure). On timeout,
    raises `ActivityFailed` with `describe_timeout(last value)`. `progress(last value)` (target and what
    was seen) is logged at INFO at most every `every` seconds, with elapsed/timeout, while the wait goes on.
    """
    started = time.monotonic()
    deadline = started + timeout
    next_report = started + every
    polls = 0
    last: Optional[T] = None
    while True:
        polls += 1
        done, last = check()
        now = time.monotonic()
        if done:
            return last, round(now - started, 3), polls
        if now >= deadline:
            raise ActivityFailed(describe_timeout(last))
        if progress is not None and now >= next_report:
            next_report = now + every
            try:
                seen = progress(last)
            except Exception as exc:  # a describer must never break the wait it describes
                seen = f"(progress unavailable: {exc})"
            logger.info(f"waiting: {seen} ({now - started:.0f}s of {timeout:g}s)")
        time.sleep(max(0.0, min(interval, deadline - now)))


# -- progress describers the wait-probes pass (target and what is seen) ----------------------------------
def agents_progress(target: Optional[str], status: str) -> Callable[[Any], str]:
    """For agent waits whose value is {"agent": {...}, "agents": [...]} or a list of agents."""
    from chaosstream.timeutil import age_seconds

    def describe(last: Any) -> str:
        agents = (last or {}).get("agents", []) if isinstance(last, dict) else list(last or [])
        seen = []
        for agent in agents[:5]:
            age = age_seconds(agent.get("lastHeartbeat"))
            beat = f", heartbeat {age:.0f}s ago" if age is not None else ""
            seen.append(f"{agent.get('agentId')} {agent.get('status')}{beat}")
        return f"agent {target or 'any'} to be {status}; seen: {'; '.join(seen) or 'no agent'}"

    return describe


def mapping_progress(what: str, target: str) -> Callable[[Any], str]:
    """For waits whose value maps names to states (or is a list/tuple of what is still open)."""

    def describe(last: Any) -> str:
        if isinstance(last, tuple):
            last = last[-1]
        if isinstance(last, dict):
            pending = {k: v for k, v in last.items() if v != target}
            shown = ", ".join(f"{k} {v}" for k, v in list(pending.items())[:5])
            return f"{what} to be {target}; not yet: {shown or 'none'}"
        items = list(last or [])
        return f"{what} to be {target}; not yet: {len(items)} ({', '.join(map(str, items[:5]))})"

    return describe
