"""The project's standard for error messages, shared by the bad-input table and the drills: one readable
sentence that names what to fix and carries no secret."""

import re
from typing import Iterable


def assert_one_sentence(message: str, needle: str = "", secrets: Iterable[str] = ()) -> None:
    """ONE readable sentence (no traceback, no newline, no bearer token) that contains `needle` and none
    of `secrets`."""
    assert needle.lower() in message.lower(), message
    assert "\n" not in message and "Traceback" not in message and 'File "' not in message, message
    assert 20 <= len(message) <= 400, message
    assert message[0].isupper() or message[0] in "'\"", message
    assert message.rstrip().endswith((".", ")", "?")), message
    assert not re.search(r"(?i)bearer\s+\w", message), message
    for secret in secrets:
        if secret:
            assert secret not in message, "a secret leaked into the message"
