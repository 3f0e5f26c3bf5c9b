"""Timestamps: the one parser and formatter of chaosstream.

StreamSpace writes naive TIMESTAMPs (Go time.Now()) and RFC 3339 in JSON, Chaos Toolkit journals carry
`datetime.isoformat()` strings, and the controls store epoch seconds. Everything is UTC; naive values are
taken as UTC.
"""

import datetime as dt
import math
import time
from typing import Any, Optional

__all__ = [
    "parse_time",
    "parse_timestamp",
    "utcnow",
    "now_epoch",
    "from_epoch",
    "age_seconds",
    "iso",
    "epoch_iso",
    "clock",
]

# An RFC 3339 timestamp with nanoseconds and an offset is 35 characters; anything much longer is not one
# (and must not cost time: journals are untrusted input).
_MAX_TIMESTAMP_CHARS = 64


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def now_epoch() -> float:
    """Wall-clock seconds since the epoch."""
    return time.time()


def from_epoch(seconds: float) -> dt.datetime:
    """An aware UTC datetime from epoch seconds."""
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


def parse_time(value: Any) -> Optional[dt.datetime]:
    """Parse an RFC 3339 string or a datetime; naive values are taken as UTC. None if unreadable."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        parsed = value
    else:
        if isinstance(value, (list, tuple, dict, set)):
            return None
        text = value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)
        text = text.strip()
        if not text or len(text) > _MAX_TIMESTAMP_CHARS:
            return None
        text = text.replace("Z", "+00:00").replace("z", "+00:00")
        # Go may print more than 6 fractional digits; Python accepts at most 6. Only the digits right after
        # the point are the fraction: an offset such as +02:00 follows them.
        if "." in text:
            head, _, tail = text.partition(".")
            count = 0
            while count < len(tail) and tail[count].isdigit():
                count += 1
            text = f"{head}.{tail[: min(count, 6)]}{tail[count:]}" if count else text
        try:
            parsed = dt.datetime.fromisoformat(text)
        except ValueError:
            return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed


def parse_timestamp(value: Any) -> Optional[float]:
    """Epoch seconds from an RFC 3339 / Go / `isoformat()` timestamp string (None if it is not one)."""
    if not isinstance(value, str):
        return None
    parsed = parse_time(value)
    if parsed is None:
        return None
    try:
        seconds = parsed.timestamp()
    except (OverflowError, ValueError, OSError):
        return None
    return seconds if math.isfinite(seconds) else None


def age_seconds(value: Any, now: Optional[dt.datetime] = None) -> Optional[float]:
    when = parse_time(value)
    if when is None:
        return None
    return round(((now or utcnow()) - when).total_seconds(), 3)


def iso(when: dt.datetime, timespec: str = "auto") -> str:
    """RFC 3339 in UTC with a `Z` (`timespec="seconds"` drops the fraction)."""
    return when.astimezone(dt.UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


def epoch_iso(seconds: float, timespec: str = "auto") -> str:
    """`iso()` of epoch seconds."""
    return iso(from_epoch(seconds), timespec)


def clock(seconds: float, digits: int = 1, date: bool = False) -> str:
    """UTC wall-clock time of epoch seconds for people: `15:23:27.5` (`digits` fractional digits; with
    `date=True` prefixed `2026-12-01 `). Out-of-range values give `?`."""
    try:
        when = from_epoch(round(float(seconds), max(digits, 0)))
    except (OverflowError, ValueError, OSError, TypeError):
        return "?"
    text = when.strftime("%H:%M:%S")
    if digits > 0:
        text += f"{when.microsecond / 1e6:.{digits}f}"[1:]
    return f"{when:%Y-%m-%d} {text}" if date else text
