"""The daemon's client side: start, stop, find and ask the sandbox daemon (CLI, tests, benchmarks)."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterable, Optional

__all__ = [
    "default_state_dir",
    "start_daemon",
    "stop_daemon",
    "restart_component",
    "read_env",
    "daemon_pid",
    "SandboxStartError",
    "SandboxNotRunning",
    "COMPONENTS",
]

COMPONENTS = ("postgres", "kube", "api")


class SandboxStartError(RuntimeError):
    """The sandbox did not come up; the message is the daemon's own sentence."""


def default_state_dir() -> Path:
    return Path(os.environ.get("STREAMSPACE_SANDBOX_STATE") or f"/tmp/chaosstream-sandbox-{os.getuid()}")


def daemon_pid(state_dir: Path) -> Optional[int]:
    try:
        pid = int((state_dir / "daemon.pid").read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    # A killed daemon whose parent is gone can linger as a zombie where PID 1 does not reap (containers).
    try:
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return None
    except (OSError, IndexError):
        pass
    return pid


def start_daemon(
    state_dir: Path,
    agents: int = 1,
    faults: Iterable[str] = (),
    timers: str = "fast",
    db_dsn: Optional[str] = None,
    port: int = 0,
    network: str = "auto",
    parent_pid: Optional[int] = None,
    timeout: float = 120.0,
    profile: str = "intended",
    agent_replicas: int = 1,
    extra: Optional[Dict[str, Any]] = None,
    tenants: bool = True,
) -> Dict[str, str]:
    """Start the sandbox in a background process and return its environment once it is ready."""
    state_dir.mkdir(parents=True, exist_ok=True)
    if daemon_pid(state_dir):
        raise SandboxStartError(
            f"A sandbox already runs with state dir {state_dir}: run 'chaosstream sandbox down' first."
        )
    for name in ("ready", "error.txt"):
        (state_dir / name).unlink(missing_ok=True)
    options = {
        "agents": agents,
        "faults": sorted(faults),
        "timers": timers,
        "profile": profile,
        "agent_replicas": agent_replicas,
        "tenants": tenants,
        "db_dsn": db_dsn,
        "port": port,
        "network": network,
        "parent_pid": parent_pid,
        **(extra or {}),
    }
    # Options may hold a DSN with a password: a 0600 file, never the command line (visible to `ps`).
    options_file = state_dir / "options.json"
    fd = os.open(options_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(options, fh)
    log = open(state_dir / "daemon.log", "ab")  # noqa: SIM115 - handed to the child
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "chaosstream.sandbox.daemon", str(state_dir), str(options_file)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    finally:
        log.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (state_dir / "ready").exists() and (state_dir / "sandbox.env").exists():
            return read_env(state_dir)
        if (state_dir / "error.txt").exists() and proc.poll() is not None:
            raise SandboxStartError((state_dir / "error.txt").read_text().strip())
        if proc.poll() is not None:
            tail = (state_dir / "daemon.log").read_text(errors="replace").strip().splitlines()[-5:]
            raise SandboxStartError("The sandbox process exited during start-up: " + " | ".join(tail))
        time.sleep(0.05)
    stop_daemon(state_dir)
    # A daemon stuck before it wrote its pid file (e.g. a database that never answers) is ours to end.
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    raise SandboxStartError(
        f"The sandbox did not become ready within {timeout:g}s: see {state_dir / 'daemon.log'}."
    )


def stop_daemon(state_dir: Path, timeout: float = 40.0) -> bool:
    """Stop the sandbox of `state_dir`; True if one was running. Cleans leftovers of a crashed one too."""
    pid = daemon_pid(state_dir)
    if pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and daemon_pid(state_dir):
            time.sleep(0.05)
        if daemon_pid(state_dir):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    _clean_leftovers(state_dir)
    return pid is not None


def _clean_leftovers(state_dir: Path) -> None:
    from chaosstream.sandbox.stack import Sandbox, SandboxOptions

    sandbox = Sandbox(SandboxOptions(state_dir=state_dir))
    sandbox.kill_leftover_processes()
    from chaosstream.sandbox.netns import SandboxNetwork, network_support

    if network_support() is None:
        SandboxNetwork(sandbox.instance).cleanup_leftovers()
    # A SIGKILLed daemon leaves its embedded PostgreSQL running: stop it by its pid file.
    pg_pid = state_dir / "pg" / "postmaster.pid"
    if pg_pid.exists():
        with contextlib.suppress(ValueError, ProcessLookupError, OSError):
            os.kill(int(pg_pid.read_text().splitlines()[0]), signal.SIGQUIT)


class SandboxNotRunning(RuntimeError):
    """No sandbox daemon runs for the state dir, or it did not answer a request."""


def restart_component(state_dir: Path, component: str, timeout: float = 60.0) -> str:
    """Ask the running sandbox to restart `component` (postgres, kube or api) in place; returns the
    daemon's one-line answer. Raises `SandboxNotRunning` or `ValueError` with a readable sentence."""
    if component not in COMPONENTS:
        raise ValueError(f"Unknown component {component!r}: use one of {', '.join(COMPONENTS)}.")
    pid = daemon_pid(state_dir)
    if not pid or not (state_dir / "ready").exists():
        raise SandboxNotRunning(
            f"No sandbox runs with state dir {state_dir}: start one with 'chaosstream sandbox up'."
        )
    requests = state_dir / "restart"
    requests.mkdir(exist_ok=True)
    rid = f"{time.time_ns()}-{os.getpid()}"
    tmp = requests / f"{rid}.tmp"
    tmp.write_text(component)
    tmp.replace(requests / f"{rid}.request")
    os.kill(pid, signal.SIGUSR1)
    done = requests / f"{rid}.done"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done.exists():
            answer = done.read_text().strip()
            done.unlink(missing_ok=True)
            status, _, text = answer.partition(" ")
            if status != "ok":
                raise SandboxNotRunning(text)
            return text
        if not daemon_pid(state_dir):
            raise SandboxNotRunning(f"The sandbox of {state_dir} stopped before restarting {component}.")
        time.sleep(0.02)
    raise SandboxNotRunning(
        f"The sandbox did not restart {component} within {timeout:g}s: see {state_dir / 'daemon.log'}."
    )


def read_env(state_dir: Path) -> Dict[str, str]:
    env: Dict[str, str] = {}
    for line in (state_dir / "sandbox.env").read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = value
    return env
