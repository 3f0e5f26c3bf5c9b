"""Dead-man reaper for NetworkPolicy partitions: `python -m chaosstream.reaper NS NAME ID EXPIRES_EPOCH`.

Started detached by `partition_agent(method="network-policy")`, it outlives a killed `chaos run` and
deletes the policy (only if it still belongs to the same partition) once it expires.
"""

import sys
import time

from chaosstream.kube import networking_api


def main() -> int:
    ns, name, pid, expires = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    time.sleep(max(0.0, expires - time.time()))
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


if __name__ == "__main__":
    sys.exit(main())
