"""Polling: the one `wait_for` of the test suite."""

import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Optional


def wait_for(
    check: Callable[[], Any], timeout: float = 5.0, what: Optional[str] = None, interval: float = 0.05
) -> Any:
    """Poll `check` until it returns something truthy and return that; fail the test after `timeout`
    seconds, naming `what` (or the check itself)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            name = what or getattr(check, "__qualname__", repr(check))
            raise AssertionError(f"{name} not reached within {timeout:g}s")
        time.sleep(interval)


def wait_for_file(path: Path, proc: subprocess.Popen, timeout: float = 30) -> bool:
    """Wait until `path` exists or `proc` ended; True when the file is there (never fails by itself)."""
    try:
        wait_for(lambda: path.exists() or proc.poll() is not None, timeout, f"{path.name}")
    except AssertionError:
        pass
    return path.exists()
