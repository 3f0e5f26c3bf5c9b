"""More emulated clusters: agents of another cluster dialling the same control plane (`--clusters N`).

A real StreamSpace control plane serves the agents of several clusters; every cluster installs the same
chart, so their agents carry the same id prefix (`$(AGENT_ID_PREFIX)-$(POD_NAME)`, or fixed ids of the
same shape) and differ only by the cluster that runs them and the `REGION` they register with
(`agents/k8s-agent/main.go`: `REGION` env → `region` of `POST /api/v1/agents/register`; the
`cluster_id` column is never written, contract §1). Cluster N is a second Kubernetes emulator with its
own store, kubelet, process runtime and port, reached through its own kubeconfig context `sandbox-N`
(the sandbox's kubeconfig holds every context; `sandbox` stays the current one). Its pods share the
node's network with cluster 1's (the same bridge, the same `streamspace-api` Service addresses), so a
partition's route, a NetworkPolicy and a kill behave there as in cluster 1.
"""

import asyncio
import contextlib
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional

import yaml

from chaosstream.sandbox.kube import KubeEmulator, write_kubeconfig
from chaosstream.sandbox.kube.rbac import ADMIN_TOKEN
from chaosstream.sandbox.netpol import NetpolEnforcer
from chaosstream.sandbox.processruntime import ProcessRuntime
from chaosstream.sandbox.serviceobjects import publish_kubernetes_service

AGENT_ID_PREFIX = (
    "k8s-sandbox"  # the sandbox's chart prefix, the same in every cluster (stack.AGENT_ID_PREFIX)
)

if TYPE_CHECKING:
    from chaosstream.sandbox.stack import Sandbox

__all__ = ["MemberCluster", "context_name", "region_of", "add_context"]

# Service objects the agents' route resolution reads (partition_agent), copied from cluster 1: both
# clusters' pods reach the control plane through the same addresses.
_SHARED_OBJECTS = (
    ("v1", "Service", "streamspace-api"),
    ("v1", "Endpoints", "streamspace-api"),
)


def context_name(cluster: int) -> str:
    """`sandbox` for cluster 1 (the kubeconfig's current context), `sandbox-N` for the others."""
    return "sandbox" if cluster == 1 else f"sandbox-{cluster}"


def region_of(cluster: int) -> str:
    """The `REGION` the agents of a cluster register with: what scopes agent probes to one cluster."""
    return "sandbox" if cluster == 1 else f"sandbox-{cluster}"


def add_context(path: Path, url: str, namespace: str, context: str) -> None:
    """Add a context (its own cluster entry, server and user) to an existing kubeconfig, kept 0600."""
    data = yaml.safe_load(path.read_text()) or {}
    for key, entry in (
        ("clusters", {"name": context, "cluster": {"server": url}}),
        ("users", {"name": context, "user": {"token": ADMIN_TOKEN}}),  # each emulator's admin token
        (
            "contexts",
            {"name": context, "context": {"cluster": context, "user": context, "namespace": namespace}},
        ),
    ):
        data[key] = [e for e in data.get(key) or [] if e.get("name") != context] + [entry]
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        yaml.safe_dump(data, fh, sort_keys=False)
    os.replace(tmp, path)


class MemberCluster:
    """Cluster number `number` (≥ 2) of a sandbox: its emulator, runtime, agent Deployments and CNI."""

    def __init__(self, sandbox: "Sandbox", number: int) -> None:
        self.sandbox = sandbox
        self.number = number
        self.context = context_name(number)
        self.state_dir = sandbox.state_dir / f"cluster-{number}"
        self.pod_kubeconfig = sandbox.state_dir / f"kubeconfig-pods-{number}"
        self.runtime: Optional[ProcessRuntime] = None
        self.emulator: Optional[KubeEmulator] = None
        self.enforcer: Optional[NetpolEnforcer] = None

    async def start(self, namespace: str) -> List[asyncio.Task]:
        """Serve the cluster, add its context, create its namespace and agent Deployments; returns the
        periodic tasks it needs (the CNI's reconcile loop) for the sandbox to own."""
        sb = self.sandbox
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.runtime = ProcessRuntime(self.state_dir, sb.network, image_pull=sb.options.image_pull)
        hosts = ["127.0.0.1"] + ([sb.network.gateway] if sb.network else [])
        self.emulator = KubeEmulator(runtime=self.runtime, hosts=hosts)
        await self.emulator.start()
        add_context(sb.state_dir / "kubeconfig", self.emulator.url, namespace, self.context)
        write_kubeconfig(str(self.pod_kubeconfig), f"http://{sb.pod_host}:{self.emulator.port}", namespace)
        self.emulator.create_object(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {
                    "name": namespace,
                    "labels": {"pod-security.kubernetes.io/enforce": sb.options.pod_security},
                },
            }
        )
        tasks: List[asyncio.Task] = []
        if sb.network is not None and sb.emulator is not None:
            for api_version, kind, name in _SHARED_OBJECTS:
                obj = sb.emulator.get_object(api_version, kind, namespace, name)
                if obj is not None:
                    self.emulator.create_object(_fresh(obj))
            # Its own kube-apiserver behind its own Service default/kubernetes, which partitions of its
            # agents must leave reachable (faults/route.py kube_api_destinations). Clusters' pods share
            # this machine's NAT table, so each takes its own ClusterIP (cluster 1 has .1).
            kube_ip = sb.network.cluster_ip(self.number)
            sb.network.add_service([], kube_ip, 443, sb.network.gateway, self.emulator.port)
            publish_kubernetes_service(self.emulator, kube_ip, sb.network.gateway, self.emulator.port)
            selector = "kubernetes.io/service-name=streamspace-api"
            for obj in sb.emulator.list_objects("discovery.k8s.io/v1", "EndpointSlice", namespace, selector):
                self.emulator.create_object(_fresh(obj))
            self.enforcer = NetpolEnforcer(
                self.emulator,
                self.runtime,
                namespace,
                [(sb.network.api_address, sb.backend_port), (sb.network.gateway, self.emulator.port)],
                sb.options.cni,
                f"{sb.instance}c{self.number}",  # type: ignore[arg-type]  # its own iptables chain
            )
            tasks.append(asyncio.create_task(sb._every(0.2, self.enforcer.reconcile)))
        for index in range(1, sb.options.agents + 1):
            self.emulator.create_object(sb.agent_deployment(index, cluster=self.number))
        return tasks

    def env_overrides(self) -> Dict[str, str]:
        """What differs in `sandbox-N.env`: the kube context, the agents' region and the first agent id."""
        sb = self.sandbox
        from chaosstream.sandbox.stack import AGENT_ID_PREFIX

        first = sb.agent_id(1, self.number)
        if sb.ids_per_pod:  # the chart's ids: the agent of this cluster's first pod
            pods = self.emulator.list_objects("v1", "Pod", "streamspace") if self.emulator else []
            first = min((f"{AGENT_ID_PREFIX}-{p['metadata']['name']}" for p in pods), default="")
        return {
            "KUBERNETES_CONTEXT": self.context,
            "STREAMSPACE_AGENT_REGION": region_of(self.number),
            "STREAMSPACE_AGENT_ID": first,
        }

    async def stop(self) -> None:
        if self.emulator is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.emulator.stop(), timeout=15)
        if self.enforcer is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.enforcer.teardown)
        self.pod_kubeconfig.unlink(missing_ok=True)
        shutil.rmtree(self.state_dir / "pids", ignore_errors=True)


def _fresh(obj: Dict[str, Any]) -> Dict[str, Any]:
    """An object read from one cluster, as a manifest to create in another (no server-set fields)."""
    meta = {k: v for k, v in obj["metadata"].items() if k in ("name", "namespace", "labels", "annotations")}
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")} | {"metadata": meta}
