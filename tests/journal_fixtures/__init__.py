"""Helpers that produce REAL Chaos Toolkit journals by running `chaos run` on tiny experiments."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from helpers import ROOT
from helpers.chaos import run_args
from helpers.chaos import start_chaos as chaos_process
from helpers.waits import wait_for_file

HERE = Path(__file__).resolve().parent
ACTS = "acts"


def act(name: str, func: str, kind: str = "action", **arguments: Any) -> Dict[str, Any]:
    """A python activity calling `acts.<func>`."""
    return {
        "type": kind,
        "name": name,
        "provider": {"type": "python", "module": ACTS, "func": func, "arguments": arguments},
    }


def experiment(
    title: str,
    tmp: Path,
    method: List[Dict[str, Any]],
    rollbacks: Optional[List[Dict[str, Any]]] = None,
    before_ok: bool = True,
    controls: Optional[List[Dict[str, Any]]] = None,
    strategy: str = "default",
    extra: Optional[Dict[str, Any]] = None,
) -> Dict[str, Any]:
    """An experiment whose hypothesis is 'the flag file tmp/broken does not exist'."""
    flag = str(tmp / "broken")
    if not before_ok:
        Path(flag).write_text("already broken")
    probe = act("service-healthy", "healthy", kind="probe", path=flag)
    probe["tolerance"] = True
    exp: Dict[str, Any] = {
        "title": title,
        "description": "journal fixture",
        "steady-state-hypothesis": {"title": "healthy", "probes": [probe]},
        "method": method,
        "rollbacks": rollbacks if rollbacks is not None else [act("heal-broken", "fix_it", path=flag)],
        "runtime": {"rollbacks": {"strategy": strategy}, "hypothesis": {"strategy": "default"}},
    }
    if controls:
        exp["controls"] = controls
    exp.update(extra or {})
    return exp


def start_chaos(
    tmp: Path,
    exp: Dict[str, Any],
    env: Optional[Dict[str, str]] = None,
    args: Optional[List[str]] = None,
    name: str = "exp",
) -> Tuple[subprocess.Popen, Path]:
    """Start `chaos run` in a new session (so signals can go to its process group)."""
    exp_path = tmp / f"{name}.json"
    exp_path.write_text(json.dumps(exp, indent=1))
    journal_path = tmp / f"{name}-journal.json"
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(ROOT), full_env.get("PYTHONPATH", "")])
    full_env.update(env or {})
    proc = chaos_process(*run_args(exp_path, journal_path, args or ()), env=full_env, cwd=tmp)
    return proc, journal_path


def finish_chaos(
    proc: subprocess.Popen, journal_path: Path, timeout: float = 60
) -> Tuple[int, Dict[str, Any], str]:
    """Wait for the run; returns (exit code, journal or {}, combined output)."""
    try:
        out, _ = proc.communicate(timeout=timeout)
    except BaseException:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        raise
    journal = json.loads(journal_path.read_text()) if journal_path.exists() else {}
    return proc.returncode, journal, out or ""


def run_chaos(
    tmp: Path,
    exp: Dict[str, Any],
    send: Optional[int] = None,
    ready: Optional[Path] = None,
    env: Optional[Dict[str, str]] = None,
    args: Optional[List[str]] = None,
    name: str = "exp",
    timeout: float = 60,
) -> Tuple[int, Dict[str, Any], str]:
    """Run `chaos run`; optionally send a signal to its process group once `ready` exists."""
    proc, journal_path = start_chaos(tmp, exp, env=env, args=args, name=name)
    if send is not None and ready is not None:
        wait_for_file(ready, proc, timeout)
        time.sleep(0.2)
        if proc.poll() is None:
            os.killpg(proc.pid, send)
    return finish_chaos(proc, journal_path, timeout)
