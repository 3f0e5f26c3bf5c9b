"""Dead-man reaper: reverts a fault at its expiry even if `chaos run` was killed.

    python -m chaosstream.faults.reaper networkpolicy NS NAME PARTITION_ID EXPIRES_EPOCH
    python -m chaosstream.faults.reaper replicas NS DEPLOYMENT EXPIRES_AT EXPIRES_EPOCH

Started detached (its own session) by `chaosstream.faults.deadman.spawn_reaper`. It reverts only what is still
the same fault: a policy with the same partition id, a Deployment whose expiry annotation is unchanged.
If Kubernetes is briefly unreachable at expiry it retries until the fault is gone or `RETRY_FOR` passes.

It is never started for a run's session record (`chaosstream.faults.sessions`): terminating a session
needs StreamSpace credentials, which this process deliberately never gets (`deadman` strips them from its
environment). Session records are left to the run's rollback, `chaosstream heal` / `heal_all` and the
reaper CronJob, which say what they terminated or left.
"""

import sys
import time

__all__ = ["RETRY_FOR", "main"]

RETRY_FOR = 300.0


def _networkpolicy(ns: str, name: str, pid: str) -> None:
    from chaosstream.clients.kube import Cluster, KubeError
    from chaosstream.faults.partition import delete_policy
    from chaosstream.faults.records import PARTITION_LABEL

    cluster = Cluster(None)
    try:
        policy = cluster.networking.read_namespaced_network_policy(name, ns)
    except KubeError as exc:
        if exc.status == 404:
            return  # already healed
        raise
    if (policy.metadata.labels or {}).get(PARTITION_LABEL) == pid:
        delete_policy(cluster, ns, name)


def _replicas(ns: str, deployment: str, expires_at: str) -> None:
    from chaosstream.clients.kube import Cluster
    from chaosstream.faults.scaledown import restore

    restore(Cluster(None), ns, deployment, only_if_expires=expires_at)


def main() -> int:
    kind = sys.argv[1]
    expires = float(sys.argv[-1])
    time.sleep(max(0.0, expires - time.time()))
    deadline = time.monotonic() + RETRY_FOR
    while True:
        try:
            if kind == "networkpolicy":
                _networkpolicy(sys.argv[2], sys.argv[3], sys.argv[4])
            elif kind == "replicas":
                _replicas(sys.argv[2], sys.argv[3], sys.argv[4])
            else:
                return 2
            return 0
        except Exception:  # the cluster may be briefly unreachable: try again until the deadline
            if time.monotonic() >= deadline:
                return 1
            time.sleep(1.0)


if __name__ == "__main__":
    sys.exit(main())
