"""Start the detached dead-man reaper (`python -m chaosstream.faults.reaper`) for a fault."""

import os
import subprocess
import sys
from typing import List

__all__ = ["spawn_reaper"]

# The reaper talks to Kubernetes only: StreamSpace credentials never reach its environment.
_SECRET_ENV = ("STREAMSPACE_PASSWORD", "STREAMSPACE_TOKEN", "STREAMSPACE_DB_DSN", "STREAMSPACE_USERNAME")


def spawn_reaper(args: List[str]) -> None:
    """Start a detached reaper process with this process's Kubernetes environment (KUBECONFIG, context)."""
    env = {k: v for k, v in os.environ.items() if k not in _SECRET_ENV}
    subprocess.Popen(
        [sys.executable, "-m", "chaosstream.faults.reaper", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env=env,
    )
