"""`RunningSandbox`: a started sandbox (embedded PostgreSQL, control plane, Kubernetes emulator, agent
processes) as the `sandbox_factory` and `shared_sandbox` fixtures of tests/conftest.py hand it out."""

import os
import subprocess
from pathlib import Path
from typing import Dict, Optional

from helpers import EXPERIMENTS, ROOT
from helpers.chaos import chaos, run_args, start_chaos


class RunningSandbox:
    """A started sandbox: its environment and state dir, plus helpers the tests share."""

    def __init__(self, state_dir: Path, env: Dict[str, str]) -> None:
        self.state_dir = state_dir
        self.env = env

    def environ(self, **extra: str) -> Dict[str, str]:
        """The process environment plus the sandbox's, with `extra` overriding both."""
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
        # the sandbox's timers, as an experiment gets them from the env file (a partition's verification
        # window is two heartbeat intervals: with the real 30 s default it would outlast fast tests)
        for key in ("HEARTBEAT_INTERVAL", "OFFLINE_THRESHOLD", "RECONNECT_OBJECTIVE"):
            if f"STREAMSPACE_{key}" in self.env:
                cfg[f"streamspace_{key.lower()}"] = float(self.env[f"STREAMSPACE_{key}"])
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
        self, experiment: str, journal: Path, extra_env: Optional[Dict[str, str]] = None, timeout: float = 240
    ) -> subprocess.CompletedProcess:
        """`chaos run experiments/EXPERIMENT` to its end, as a user would type it."""
        return chaos(
            *run_args(EXPERIMENTS / experiment, journal),
            env=self.environ(**(extra_env or {})),
            cwd=ROOT,
            timeout=timeout,
        )

    def start_chaos_run(
        self,
        experiment: str,
        journal: Path,
        extra_env: Optional[Dict[str, str]] = None,
        control_file: Optional[Path] = None,
        log_file: Optional[Path] = None,
    ) -> subprocess.Popen:
        """`chaos run` of `experiment` (a name in experiments/ or a path) in its own session (its own
        process group), as a terminal or a pod would run it."""
        return start_chaos(
            *run_args(EXPERIMENTS / experiment, journal, control_file=control_file),
            env=self.environ(**(extra_env or {})),
            cwd=ROOT,
            log_file=log_file,
        )
