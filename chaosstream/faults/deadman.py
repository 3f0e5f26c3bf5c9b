"""Start the detached dead-man reaper (`python -m chaosstream.faults.reaper`) for a fault."""

import os
import subprocess
import sys
from typing import Any, List, Mapping, Optional

__all__ = ["spawn_reaper"]

# The reaper talks to Kubernetes only: StreamSpace credentials never reach its environment.
_SECRET_ENV = ("STREAMSPACE_PASSWORD", "STREAMSPACE_TOKEN", "STREAMSPACE_DB_DSN", "STREAMSPACE_USERNAME")


def spawn_reaper(args: List[str], secrets: Optional[Mapping[str, Any]] = None) -> None:
    """Start a detached reaper process that reaches the cluster the fault is in: this process's
    environment with the activity's own KUBECONFIG / KUBERNETES_CONTEXT (from its secrets) on top, so a
    fault made in another context is never reaped (or missed) in the default one."""
    from chaosstream.clients.kube import kube_env

    env = {k: v for k, v in os.environ.items() if k not in _SECRET_ENV}
    env.update(kube_env(secrets))
    subprocess.Popen(
        [sys.executable, "-m", "chaosstream.faults.reaper", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env=env,
    )
