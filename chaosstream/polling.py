"""Wait loops with early exit: they return as soon as the condition holds and say how long it took.

Chaos Toolkit does not enforce activity timeouts for Python providers, so every wait-probe bounds
itself with its own `timeout`.
"""

import time
from typing import Callable, Optional, Tuple, TypeVar

from chaoslib.exceptions import ActivityFailed

from chaosstream.arguments import seconds

__all__ = ["wait_until", "poll_interval_of"]

T = TypeVar("T")


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
