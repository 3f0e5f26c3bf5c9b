"""The fault ledger reads back who made a partition: a rollback heals its own run's partitions only."""

from chaosstream.clients.kube import Cluster
from chaosstream.faults import ledger
from chaosstream.faults.partition import _record
from chaosstream.faults.records import RUN_ID


def test_a_pod_partition_carries_its_owner(core, kubeconfig):
    core.create_namespaced_pod(
        "default",
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "agent-0"},
         "spec": {"containers": [{"name": "agent", "image": "agent:latest"}]}},
    )  # fmt: skip
    cluster = Cluster({"KUBECONFIG": kubeconfig})
    _record(cluster, "default", "agent-0", "p1", {"method": "exec", "owner": RUN_ID, "expires_at": None})
    _record(
        cluster, "default", "agent-0", "p2", {"method": "exec", "expires_at": None}
    )  # an older chaosstream
    owners = {f.fault_id: f.owner for f in ledger.list_faults(cluster, "default") if f.kind == "partition"}
    assert owners == {"p1": RUN_ID, "p2": None}
