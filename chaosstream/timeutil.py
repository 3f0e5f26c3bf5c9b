"""Timestamps: StreamSpace writes naive TIMESTAMPs (Go time.Now()) and RFC 3339 in JSON."""

import datetime as dt
from typing import Any, Optional

__all__ = ["parse_time", "utcnow", "age_seconds", "iso"]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def parse_time(value: Any) -> Optional[dt.datetime]:
    """Parse an RFC 3339 string or a datetime; naive values are taken as UTC."""
    if value in (None, ""):
        return None
    if isinstance(value, dt.datetime):
        parsed = value
    else:
        text = str(value).strip().replace("Z", "+00:00")
        # Go may print more than 6 fractional digits; Python accepts at most 6.
        if "." in text:
            head, _, tail = text.partition(".")
            digits = "".join(ch for ch in tail if ch.isdigit())
            rest = tail[len(digits) :]
            text = f"{head}.{digits[:6]}{rest}"
        try:
            parsed = dt.datetime.fromisoformat(text)
        except ValueError:
            return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed


def age_seconds(value: Any, now: Optional[dt.datetime] = None) -> Optional[float]:
    when = parse_time(value)
    if when is None:
        return None
    return round(((now or utcnow()) - when).total_seconds(), 3)


def iso(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
