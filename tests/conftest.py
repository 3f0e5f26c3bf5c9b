"""Shared fixtures: a real sandbox (embedded PostgreSQL, control plane, Kubernetes emulator, agent
processes) started through the same code path as `chaosstream sandbox up`."""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable, Dict, Iterator, List

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXPERIMENTS = ROOT / "experiments"


class RunningSandbox:
    """A started sandbox: its environment and state dir, plus helpers the tests share."""

    def __init__(self, state_dir: Path, env: Dict[str, str]) -> None:
        self.state_dir = state_dir
        self.env = env

    def environ(self, **extra: str) -> Dict[str, str]:
        env = dict(os.environ)
        env.update(self.env)
        env.update(extra)  # the test's values win over the sandbox's
        return env

    def configuration(self, **extra: object) -> Dict[str, object]:
        cfg: Dict[str, object] = {
            "streamspace_api_url": self.env["STREAMSPACE_API_URL"],
            "streamspace_namespace": self.env["STREAMSPACE_NAMESPACE"],
            "streamspace_poll_interval": float(self.env["STREAMSPACE_POLL_INTERVAL"]),
        }
        cfg.update(extra)
        return cfg

    def secrets(self, **extra: str) -> Dict[str, str]:
        sec = {
            "username": self.env["STREAMSPACE_USERNAME"],
            "password": self.env["STREAMSPACE_PASSWORD"],
            "db_dsn": self.env["STREAMSPACE_DB_DSN"],
            "KUBECONFIG": self.env["KUBECONFIG"],
        }
        sec.update(extra)
        return sec

    def chaos_run(
        self, experiment: str, journal: Path, extra_env: Dict[str, str] = None, timeout: float = 240
    ):
        """`chaos run` as a subprocess, as a user would type it."""
        cmd = [
            sys.executable, "-m", "chaostoolkit", "--no-version-check", "--no-log-file", "run",
            "--journal-path", str(journal), str(EXPERIMENTS / experiment),
        ]  # fmt: skip
        return subprocess.run(
            cmd,
            env=self.environ(**(extra_env or {})),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=ROOT,
        )


@pytest.fixture
def sandbox_factory() -> Iterator[Callable[..., RunningSandbox]]:
    """Start sandboxes with options (agents, faults, timers); all are stopped after the test."""
    from chaosstream.sandbox.control import start_daemon, stop_daemon

    started: List[Path] = []

    def start(
        agents: int = 1, faults: tuple = (), timers: str = "fast", network: str = "auto"
    ) -> RunningSandbox:
        state = Path(tempfile.mkdtemp(prefix="css-test-"))
        started.append(state)
        env = start_daemon(
            state, agents=agents, faults=faults, timers=timers, network=network, parent_pid=os.getpid()
        )
        return RunningSandbox(state, env)

    yield start
    for state in started:
        stop_daemon(state)
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="module")
def shared_sandbox() -> Iterator[RunningSandbox]:
    """One default sandbox per test module, for tests that leave it as they found it."""
    from chaosstream.sandbox.control import start_daemon, stop_daemon

    state = Path(tempfile.mkdtemp(prefix="css-test-"))
    env = start_daemon(state, parent_pid=os.getpid())
    try:
        yield RunningSandbox(state, env)
    finally:
        stop_daemon(state)
        shutil.rmtree(state, ignore_errors=True)
