"""Dead-man reaper: reverts a fault at its expiry even if `chaos run` was killed.

    python -m chaosstream.reaper networkpolicy NS NAME PARTITION_ID EXPIRES_EPOCH
    python -m chaosstream.reaper replicas NS DEPLOYMENT EXPIRES_AT EXPIRES_EPOCH

Started detached (its own session) by the actions that inject a fault. It reverts only what is still
the same fault: a policy with the same partition id, a Deployment whose expiry annotation is unchanged.
"""

import os
import subprocess
import sys
import time
from typing import List

__all__ = ["spawn_reaper"]


def spawn_reaper(args: List[str]) -> None:
    """Start a detached reaper process with this process's environment (KUBECONFIG, context)."""
    subprocess.Popen(
        [sys.executable, "-m", "chaosstream.reaper", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env=dict(os.environ),
    )


def _networkpolicy(ns: str, name: str, pid: str) -> int:
    from chaosstream.kube import networking_api

    api = networking_api(None)
    try:
        policy = api.read_namespaced_network_policy(name, ns)
    except Exception:  # already healed (404) or the cluster is gone: nothing to do
        return 0
    if (policy.metadata.labels or {}).get("chaosstream.io/partition") == pid:
        try:
            api.delete_namespaced_network_policy(name, ns)
        except Exception:
            return 1
    return 0


def _replicas(ns: str, deployment: str, expires_at: str) -> int:
    from chaosstream.actions.agents import restore_replicas

    try:
        restore_replicas(ns, deployment, None, only_if_expires=expires_at)
    except Exception:
        return 1
    return 0


def main() -> int:
    kind = sys.argv[1]
    expires = float(sys.argv[-1])
    time.sleep(max(0.0, expires - time.time()))
    if kind == "networkpolicy":
        return _networkpolicy(sys.argv[2], sys.argv[3], sys.argv[4])
    if kind == "replicas":
        return _replicas(sys.argv[2], sys.argv[3], sys.argv[4])
    return 2


if __name__ == "__main__":
    sys.exit(main())
