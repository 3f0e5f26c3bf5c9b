"""Tiny python activities for the journal fixtures (imported by `chaos run` subprocesses via PYTHONPATH)."""

import os
import time
from typing import Any, Dict


def value(v: Any = True) -> Any:
    """Return the given value."""
    return v


def healthy(path: str) -> bool:
    """Healthy while the 'broken' flag file does not exist."""
    return not os.path.exists(path)


def break_it(path: str) -> Dict[str, Any]:
    """Create the 'broken' flag file (the fault)."""
    with open(path, "w") as fh:
        fh.write("broken")
    return {"broken": path}


def fix_it(path: str, log: str = None) -> Dict[str, Any]:
    """Remove the 'broken' flag file (the rollback); append to `log` so tests can see it ran."""
    if os.path.exists(path):
        os.remove(path)
    if log:
        with open(log, "a") as fh:
            fh.write("fixed\n")
    return {"fixed": path}


def fail(message: str = "boom") -> None:
    """Always raise."""
    raise RuntimeError(message)


def slow(seconds: float = 20.0, ready: str = None) -> Dict[str, Any]:
    """Sleep (in small steps), after touching `ready` so the test knows when to send a signal."""
    if ready:
        with open(ready, "w") as fh:
            fh.write(str(os.getpid()))
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.05)
    return {"slept_s": seconds}


def recovered(elapsed_s: float = 1.25) -> Dict[str, Any]:
    """A wait-probe lookalike that reports a recovery duration."""
    time.sleep(0.05)
    return {"status": "online", "elapsed_s": elapsed_s}


def set_agent(state_file: str, agent_id: str, status: str, hold: float = 0.0) -> Dict[str, Any]:
    """Flip an agent's status in the fake API's state file (a 'partition' or its 'heal'), then wait."""
    import json

    with open(state_file) as fh:
        state = json.load(fh)
    previous = state["agents"].get(agent_id, {}).get("status")
    state["agents"].setdefault(agent_id, {})["status"] = status
    tmp = state_file + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(state, fh)
    os.replace(tmp, state_file)
    time.sleep(hold)
    return {"agent_id": agent_id, "previous": previous, "status": status}
