"""Wait loops with early exit: they return as soon as the condition holds and say how long it took.

Chaos Toolkit does not enforce activity timeouts for Python providers, so every wait-probe bounds
itself with its own `timeout`.
"""

import math
import time
from typing import Callable, Optional, Tuple, TypeVar

from chaoslib.exceptions import ActivityFailed

__all__ = ["wait_until", "check_timeout", "poll_interval_of"]

T = TypeVar("T")


def check_timeout(timeout: float, name: str = "timeout") -> float:
    """Validate a user-supplied duration: a positive, finite number of seconds."""
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise ActivityFailed(f"Argument '{name}' must be a number of seconds, not {timeout!r}.")
    if not math.isfinite(timeout) or timeout <= 0:
        raise ActivityFailed(f"Argument '{name}' must be greater than 0 seconds, not {timeout!r}.")
    return float(timeout)


def poll_interval_of(settings: object, poll_interval: Optional[float]) -> float:
    """The probe's own `poll_interval` if given (validated), else configuration `streamspace_poll_interval`."""
    if poll_interval is None:
        return float(settings.poll_interval)
    return check_timeout(poll_interval, "poll_interval")


def wait_until(
    check: Callable[[], Tuple[bool, T]],
    timeout: float,
    interval: float,
    describe_timeout: Callable[[Optional[T]], str],
) -> Tuple[T, float, int]:
    """Call `check` until it returns (True, value); return (value, elapsed seconds, polls).

    `check` raising `ActivityFailed` stops the wait at once (the probe could not measure). On timeout,
    raises `ActivityFailed` with `describe_timeout(last value)`.
    """
    started = time.monotonic()
    deadline = started + timeout
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
        time.sleep(max(0.0, min(interval, deadline - now)))
