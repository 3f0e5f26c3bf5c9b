"""Credentials never leave the journal tools: every line, report and JUnit file is scrubbed.

`make_scrubber(journal)` returns a function that removes from text: what `chaosstream.settings.redact`
removes (URL passwords, bearer tokens, the STREAMSPACE_* secrets set in the environment), the literal
secret values the experiment declares (inline, or `env` references that are set), JWTs, and
`token=...`/`password: ...` pairs. Values under secret-looking keys are masked before they are even
rendered (`chaosstream.journal.schema.preview`).
"""

import os
import re
from typing import Any, Callable, List

from chaosstream.journal.schema import as_dict, get_dict
from chaosstream.settings import redact, resolve_settings

__all__ = ["make_scrubber", "secret_strings", "MAX_LITERALS"]

_JWT_RE = re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
_LONG_TOKEN_RE = re.compile(r"(?i)\b(token|password|secret|api[_-]?key)(\s*[=:]\s*)([^\s,;'\"]+)")
# A journal is untrusted: scrubbing must stay cheap even if it declares absurdly many secrets.
MAX_LITERALS = 1000


def secret_strings(journal: Any) -> List[str]:
    """Literal secret values declared in the experiment (inline, or env references that are set)."""
    found: List[str] = []
    for scope in get_dict(get_dict(journal, "experiment"), "secrets").values():
        for value in as_dict(scope).values():
            if isinstance(value, str) and len(value) >= 4:
                found.append(value)
            elif isinstance(value, dict) and value.get("type") == "env" and isinstance(value.get("key"), str):
                try:
                    env = os.environ.get(value["key"], "")
                except ValueError:  # a key with a NUL byte
                    env = ""
                if len(env) >= 4:
                    found.append(env)
            if len(found) >= MAX_LITERALS:
                return found
    return found


def make_scrubber(journal: Any) -> Callable[[str], str]:
    """A function that removes credentials from text (see the module docstring)."""
    try:
        settings = resolve_settings({}, {})  # picks up STREAMSPACE_* secrets from the environment
    except Exception:  # a malformed environment must not stop the verdict
        settings = None
    literals = sorted(set(secret_strings(journal)), key=len, reverse=True)

    def scrub(text: str) -> str:
        out = redact(text, settings)
        for value in literals:
            if value in out:
                out = out.replace(value, "***")
        out = _JWT_RE.sub("***", out)
        return _LONG_TOKEN_RE.sub(lambda m: f"{m.group(1)}{m.group(2)}***", out)

    return scrub
