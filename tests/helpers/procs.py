"""Processes."""

import psutil


def pid_alive(pid: int) -> bool:
    """True while process `pid` runs. A zombie (exited, not reaped yet: PID 1 of some containers never
    reaps orphans) is dead, although `os.kill(pid, 0)` still succeeds on it."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True  # it exists, someone else's
