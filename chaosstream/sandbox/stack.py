"""The sandbox stack: PostgreSQL, the control plane, the Kubernetes emulator and agent pods, wired together.

`Sandbox.start()` brings everything up in the running event loop and writes an env file that points
Chaos Toolkit at it; `Sandbox.stop()` removes every process, namespace and temporary file it made.
"""

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import socket
import time
from pathlib import Path
from typing import Any, Dict, FrozenSet, List, Optional

import psycopg
from aiohttp import web

from chaosstream.sandbox.components import ApiReplicas, PostgresPod
from chaosstream.sandbox.faults import validate_faults
from chaosstream.sandbox.kube import KubeEmulator, write_kubeconfig
from chaosstream.sandbox.netns import NetworkUnavailable, SandboxNetwork, claim_instance, network_support
from chaosstream.sandbox.netpol import NetpolEnforcer
from chaosstream.sandbox.processruntime import PROCESS_ANNOTATION, ProcessRuntime
from chaosstream.sandbox.profile import Profile, profile_named
from chaosstream.sandbox.servicelb import ServiceBalancer
from chaosstream.sandbox.serviceobjects import publish_kubernetes_service, service_objects
from chaosstream.sandbox.timers import Timers, timer_set

__all__ = ["SandboxOptions", "Sandbox", "SandboxError", "AGENT_ID_PREFIX", "agent_deployment_name"]

log = logging.getLogger("chaosstream.sandbox")

NAMESPACE = "streamspace"
AGENT_ID_PREFIX = "k8s-sandbox"
AGENT_LABELS = {
    "app.kubernetes.io/name": "streamspace",
    "app.kubernetes.io/instance": "streamspace",
    "app.kubernetes.io/component": "k8s-agent",
}


class SandboxError(RuntimeError):
    """The sandbox cannot start; the message says what to change."""


@dataclasses.dataclass
class SandboxOptions:
    state_dir: Path
    agents: int = 1
    faults: FrozenSet[str] = frozenset()
    timers: str = "fast"
    profile: str = "intended"
    agent_replicas: int = 1
    stale_rows: int = 2  # offline agent rows of past pods, per agent Deployment (as every real install has)
    db_dsn: Optional[str] = None
    port: int = 0
    kube_port: int = 0
    network: str = "auto"  # auto | on | off
    cni: str = "enforcing"  # enforcing | ignore-endport | new-connections-only | none
    service_route: str = "kube-proxy"  # kube-proxy | socket-lb
    image_pull: str = "fast"  # fast | slow:SECONDS | backoff:SECONDS
    pod_security: str = "privileged"  # privileged | baseline | restricted (the namespace's enforce label)
    tenants: bool = True  # other users' sessions and commands on neighbour agents (sandbox/tenants.py)
    clusters: int = 1  # emulated clusters whose agents dial this control plane (sandbox/clusters.py)
    api_replicas: int = 0  # API Deployment replicas; 0 = the profile's (the chart's 2)
    session_namespace: str = ""  # the chart's k8sAgent.config.sessionNamespace; "" = the agents' namespace
    # the cluster's StorageClasses, the first the default: kind/minikube have `standard`; EKS has `gp2`
    # (no `standard`), AKS `default`/`managed-csi`; "" = none
    storage_classes: str = "standard"


API_SERVICE = "streamspace-api"
API_SERVICE_PORT = 8000


def agent_deployment_name(index: int) -> str:
    """`streamspace-k8s-agent` for the first agent (the chart's name), `-2`, `-3`… for the others."""
    return "streamspace-k8s-agent" if index == 1 else f"streamspace-k8s-agent-{index}"


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _check_port(port: int) -> None:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            raise SandboxError(
                f"Port {port} is already in use: pass another --port (or 0 for a free one)."
            ) from None


def _go_duration(seconds: float) -> str:
    return f"{int(seconds)}s" if float(seconds).is_integer() else f"{int(seconds * 1000)}ms"


class Sandbox:
    """One running sandbox; see the module docstring."""

    def __init__(self, options: SandboxOptions) -> None:
        self.options = options
        self.state_dir = options.state_dir
        self.faults = validate_faults(options.faults)
        self.timers: Timers = timer_set(options.timers)
        if not 1 <= options.agents <= 20:
            raise SandboxError(f"--agents must be between 1 and 20, not {options.agents}.")
        if not 1 <= options.agent_replicas <= 20:
            raise SandboxError(f"--agent-replicas must be between 1 and 20, not {options.agent_replicas}.")
        if not 1 <= options.clusters <= 3:
            raise SandboxError(f"--clusters must be between 1 and 3, not {options.clusters}.")
        try:
            self.profile: Profile = profile_named(options.profile)
        except ValueError as exc:
            raise SandboxError(f"--profile: {exc}.") from None
        if options.cni not in ("enforcing", "ignore-endport", "new-connections-only", "none"):
            raise SandboxError(f"Unknown --cni {options.cni!r}.")
        mode, _, delay = options.image_pull.partition(":")
        if mode not in ("fast", "slow", "backoff") or (delay and not delay.replace(".", "", 1).isdigit()):
            raise SandboxError(
                f"--image-pull must be fast, slow:SECONDS or backoff:SECONDS, not {options.image_pull!r}."
            )
        if options.pod_security not in ("privileged", "baseline", "restricted"):
            raise SandboxError(f"Unknown --pod-security {options.pod_security!r}.")
        if options.service_route not in ("kube-proxy", "socket-lb"):
            raise SandboxError(f"Unknown --service-route {options.service_route!r}.")
        self.api_replica_count = options.api_replicas or self.profile.api_replicas
        self.session_namespace = options.session_namespace or NAMESPACE
        self.storage_classes = [c.strip() for c in options.storage_classes.split(",") if c.strip()]
        if not re.match(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", self.session_namespace):
            raise SandboxError(
                f"--session-namespace must be a namespace name, not {options.session_namespace!r}."
            )
        if not 1 <= self.api_replica_count <= 10:
            raise SandboxError(f"--api-replicas must be between 1 and 10, not {options.api_replicas}.")
        # the instance number this state dir's sandbox holds (claim_instance), else the dir's own
        recorded = self.state_dir / "instance"
        digest = hashlib.sha1(str(self.state_dir.resolve()).encode()).digest()
        self.instance = digest[0] % 250 + 1
        with contextlib.suppress(OSError, ValueError):
            self.instance = int(recorded.read_text())
        self._instance_lock: Any = None
        self.network: Optional[SandboxNetwork] = None
        self.postgres: Any = None
        self.dsn = ""
        self.balancer = ServiceBalancer()  # the API Service: front port and agents' route
        self.api: Optional[ApiReplicas] = None
        self.postgres_pod: Optional[PostgresPod] = None
        self.emulator: Optional[KubeEmulator] = None
        self.runtime: Optional[ProcessRuntime] = None
        self.api_port = 0  # the SRE's front port (a port-forward or an ingress in a cluster)
        self.backend_port = 0  # the control plane's targetPort, behind the in-cluster Service
        self.admin_password = secrets.token_urlsafe(12)
        self.bootstrap_key = secrets.token_hex(32)
        self.jwt_secret = secrets.token_hex(32)
        self.env_file = self.state_dir / "sandbox.env"
        self.first_agent_id = self.agent_id(1)
        self._tasks: List[asyncio.Task] = []
        self._routes: Any = None  # shared agent routing of the API replicas (the Redis AgentHub)
        self.enforcer: Optional[NetpolEnforcer] = None
        self.members: List[Any] = []  # clusters 2..N (sandbox/clusters.py)

    # -- start -----------------------------------------------------------------------------------------
    async def start(self) -> None:
        started = time.monotonic()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.kill_leftover_processes()
        await asyncio.to_thread(self._start_network)
        await asyncio.to_thread(self._start_database)
        await self._start_front()
        await self._start_tenants()
        await self._start_kubernetes()
        await self._wait_for_agents(timeout=max(30.0, self.timers.heartbeat_interval * 3))
        if self.ids_per_pod:
            rows = await asyncio.to_thread(self._agent_rows)
            online = sorted(r[0] for r in rows if r[1] == "online" and r[3] == "sandbox")  # cluster 1's
            self.first_agent_id = online[0] if online else ""
        self._write_env_file()
        log.info("sandbox up in %.2fs", time.monotonic() - started)

    def kill_leftover_processes(self) -> None:
        """Kill agent processes a crashed sandbox of this state dir left behind."""
        for pid_file in [*self.state_dir.glob("pids/*.pid"), *self.state_dir.glob("cluster-*/pids/*.pid")]:
            with contextlib.suppress(ValueError, ProcessLookupError, PermissionError, OSError):
                os.kill(int(pid_file.read_text().strip()), 9)
            pid_file.unlink(missing_ok=True)

    def _start_network(self) -> None:
        mode = self.options.network
        if mode == "off":
            return
        reason = network_support()
        if reason:
            if mode == "on":
                raise SandboxError(f"Cannot give pods network namespaces: {reason}.")
            log.warning("network namespaces disabled: %s; network faults will be refused", reason)
            return
        try:
            self.instance, self._instance_lock = claim_instance(self.instance)
            (self.state_dir / "instance").write_text(str(self.instance))
            self.network = SandboxNetwork(self.instance)
            self.network.service_route = self.options.service_route
            self.network.setup()
        except (NetworkUnavailable, OSError) as exc:
            raise SandboxError(f"Cannot create the sandbox bridge: {exc}.") from None

    def _start_database(self) -> None:
        from chaosstream.sandbox.postgres import EmbeddedPostgres, apply_schema

        if self.options.db_dsn:
            self.dsn = self.options.db_dsn
            try:
                psycopg.connect(self.dsn, connect_timeout=5).close()
            except psycopg.Error as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise SandboxError(
                    f"Cannot connect to --db-dsn ({first}): check the DSN and that PostgreSQL runs."
                ) from None
        else:
            pg_dir = self.state_dir / "pg"
            shutil.rmtree(pg_dir, ignore_errors=True)
            self.postgres = EmbeddedPostgres(pg_dir)
            self.dsn = self.postgres.start()
        apply_schema(self.dsn)
        self._insert_stale_rows()

    async def _start_tenants(self) -> None:
        if not self.options.tenants:
            return
        from chaosstream.sandbox.tenants import Tenants

        tenants = Tenants(self.dsn, complete_updates_sessions=self.profile.complete_updates_sessions)
        await asyncio.to_thread(tenants.seed)
        self._tasks.append(asyncio.create_task(self._every(self.timers.heartbeat_interval, tenants.tick)))

    def _insert_stale_rows(self) -> None:
        """Offline rows of agent pods long gone: nothing deletes them on a real install (as-built §1)."""
        import datetime as dt

        old = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(days=3)
        with psycopg.connect(self.dsn) as conn:
            for index in range(1, self.options.agents + 1):
                for n in range(self.options.stale_rows):
                    suffix = hashlib.sha1(f"{index}-{n}".encode()).hexdigest()
                    pod = f"{agent_deployment_name(index)}-{suffix[:9]}-{suffix[9:14]}"
                    when = old + dt.timedelta(hours=n)
                    conn.execute(
                        "INSERT INTO agents (agent_id, platform, region, status, org_id, approval_status,"
                        " approved_at, approved_by, last_heartbeat, created_at, updated_at)"
                        " VALUES (%s, 'kubernetes', 'sandbox', 'offline', 'default-org', 'approved', %s,"
                        " 'admin', %s, %s, %s) ON CONFLICT (agent_id) DO NOTHING",
                        (f"{AGENT_ID_PREFIX}-{pod}", when, when, when, when),
                    )

    @property
    def pod_host(self) -> str:
        """The address pods use to reach the control plane and the Kubernetes API."""
        return self.network.gateway if self.network else "127.0.0.1"

    async def _start_front(self) -> None:
        """Open the API Service's listeners (sandbox/servicelb.py); the API pods are its backends.

        The SRE reaches it on 127.0.0.1:<front port> (a port-forward or an ingress in a cluster); with pod
        networking, pods reach it only through the Service `streamspace-api:8000` (ClusterIP, DNATed to
        <API address>:<backend port>). Either way each connection goes to one ready API replica."""
        port = self.options.port
        if port:
            _check_port(port)
        self.api_port = await self.balancer.listen("127.0.0.1", port)
        if self.network is not None:
            self.backend_port = await self.balancer.listen(self.network.api_address, 0)
            if self.network.v6:
                await self.balancer.listen(self.network.api_address6, self.backend_port)

    def _make_api_app(self, pod_name: str, shared_routing: bool) -> web.Application:
        """One API replica's app (what `api/cmd/main.go` builds in each pod)."""
        from chaosstream.sandbox.controlplane import ControlPlaneConfig, create_app
        from chaosstream.sandbox.controlplane.hub import AgentRoutes

        config = ControlPlaneConfig(
            dsn=self.dsn,
            admin_password=self.admin_password,
            jwt_secret=self.jwt_secret,
            bootstrap_key=self.bootstrap_key,
            timers=self.timers,
            faults=self.faults,
            profile=self.profile,
            namespace=NAMESPACE,
            replica=pod_name,
        )
        if shared_routing and self._routes is None:
            self._routes = AgentRoutes()
        return create_app(config, self._routes if shared_routing else None)

    async def _start_kubernetes(self) -> None:
        from chaosstream.sandbox.crds import crd_objects
        from chaosstream.sandbox.topology import api_objects, postgres_objects

        self.runtime = ProcessRuntime(
            self.state_dir,
            self.network,
            image_pull=self.options.image_pull,
            vnc_frame_interval=1.0 / self.timers.factor,  # a session desktop's frame: 1 s real
        )
        self.api = ApiReplicas(self._make_api_app, self.balancer)
        self.runtime.components["api"] = self.api
        if self.postgres is not None:
            self.postgres_pod = PostgresPod(self.postgres)
            self.runtime.components["postgres"] = self.postgres_pod
        hosts = ["127.0.0.1"] + ([self.network.gateway] if self.network else [])
        self.emulator = KubeEmulator(runtime=self.runtime, hosts=hosts, port=self.options.kube_port, tls=True)
        await self.emulator.start()
        write_kubeconfig(str(self.state_dir / "kubeconfig"), self.emulator.url, NAMESPACE)
        pod_url = f"http://{self.pod_host}:{self.emulator.port}"
        write_kubeconfig(str(self.state_dir / "kubeconfig-pods"), pod_url, NAMESPACE)
        self.emulator.create_object(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {
                    "name": NAMESPACE,
                    "labels": {"pod-security.kubernetes.io/enforce": self.options.pod_security},
                },
            }
        )
        if self.session_namespace != NAMESPACE:
            self.emulator.create_object(
                {
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {
                        "name": self.session_namespace,
                        "labels": {"pod-security.kubernetes.io/enforce": self.options.pod_security},
                    },
                }
            )
        for n, name in enumerate(self.storage_classes):
            self.emulator.create_object(
                {
                    "apiVersion": "storage.k8s.io/v1",
                    "kind": "StorageClass",
                    "metadata": {
                        "name": name,
                        "annotations": {"storageclass.kubernetes.io/is-default-class": str(n == 0).lower()},
                    },
                    "provisioner": "rancher.io/local-path",
                    "reclaimPolicy": "Delete",
                    "volumeBindingMode": "Immediate",
                }
            )
        for crd in crd_objects():  # chart/crds/, installed before the chart's templates as helm does
            self.emulator.create_object(crd)
        if "vnc-tunnel-rbac" in self.faults:
            self._agent_rbac()
        if self.network is not None:
            self._create_services()
        # the chart's control plane (sandbox/topology.py) and the agents at once, as `helm install` does:
        # the agents' start-up overlaps the API's (an agent that dials before a replica serves retries)
        if self.postgres is not None:
            for obj in postgres_objects(NAMESPACE):
                self.emulator.create_object(obj)
        for obj in api_objects(NAMESPACE, self.api_replica_count, self.profile.shared_agent_routing):
            self.emulator.create_object(obj)
        for index in range(1, self.options.agents + 1):
            self.emulator.create_object(self.agent_deployment(index))
        try:
            await self.api.wait_serving(self.api_replica_count, timeout=30)
        except TimeoutError as exc:
            raise SandboxError(
                f"The API pods did not start ({exc}); see {self.state_dir / 'logs'}."
            ) from None
        if self.network is not None:
            enforcer = NetpolEnforcer(
                self.emulator,
                self.runtime,
                NAMESPACE,
                [
                    (self.network.api_address, self.backend_port),
                    (self.network.gateway, self.emulator.port),
                ],
                self.options.cni,
                self.instance,
            )
            self.enforcer = enforcer
            self._tasks.append(asyncio.create_task(self._every(0.2, enforcer.reconcile)))
        await self._start_members()

    async def _start_members(self) -> None:
        """Clusters 2..N: their own emulator and kubeconfig context, agents dialling this control plane."""
        from chaosstream.sandbox.clusters import MemberCluster

        for number in range(2, self.options.clusters + 1):
            member = MemberCluster(self, number)
            self.members.append(member)
            self._tasks.extend(await member.start(NAMESPACE))

    def _agent_rbac(self) -> None:
        """Fault vnc-tunnel-rbac: the agents use ServiceAccount streamspace-agent, bound to the chart's Role
        without pods/portforward (chaosstream/sandbox/agentrbac.py)."""
        import yaml

        from chaosstream.sandbox.agentrbac import SERVICE_ACCOUNT, agent_rbac_objects
        from chaosstream.sandbox.kube.kubeconfig import kubeconfig_dict

        assert self.emulator is not None
        for obj in agent_rbac_objects(NAMESPACE, portforward=False):
            self.emulator.create_object(obj)
        config = kubeconfig_dict(f"http://{self.pod_host}:{self.emulator.port}", NAMESPACE)
        config["users"][0]["user"]["token"] = self.emulator.rbac.mint(NAMESPACE, SERVICE_ACCOUNT)  # type: ignore[index]
        path = self.state_dir / "kubeconfig-agent"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        path.chmod(0o600)

    def _create_services(self) -> None:
        """The API Service and the `kubernetes` Service, with their Endpoints, as a cluster has them."""
        assert self.network is not None and self.emulator is not None
        net = self.network
        api_ip, kube_ip = net.cluster_ip(10), net.cluster_ip(1)
        net.add_service(
            [API_SERVICE, f"{API_SERVICE}.{NAMESPACE}", f"{API_SERVICE}.{NAMESPACE}.svc.cluster.local"],
            api_ip,
            API_SERVICE_PORT,
            net.api_address,
            self.backend_port,
        )
        net.add_service(
            ["kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"],
            kube_ip,
            443,
            net.gateway,
            self.emulator.port,
        )
        v6 = {}
        if net.v6:
            # Dual stack: an IPv6 ClusterIP per Service too (v1 Endpoints list the primary family only).
            # (`kubernetes` stays single-stack, as on a real cluster: the primary family only.)
            v6 = {API_SERVICE: net.cluster_ip6(10)}
            net.add_service([], v6[API_SERVICE], API_SERVICE_PORT, net.api_address6, self.backend_port)
        api_endpoints = [("IPv4", net.api_address)] + ([("IPv6", net.api_address6)] if v6 else [])
        for obj in service_objects(
            NAMESPACE,
            API_SERVICE,
            [api_ip, *v6.values()],
            API_SERVICE_PORT,
            "http",
            api_endpoints,
            self.backend_port,
        ):
            self.emulator.create_object(obj)
        publish_kubernetes_service(self.emulator, kube_ip, net.gateway, self.emulator.port)

    async def _every(self, interval: float, func: Any) -> None:
        while True:
            try:
                await asyncio.to_thread(func)
            except Exception:  # keep enforcing; one failed reconcile must not stop the loop
                log.exception("periodic task failed")
            await asyncio.sleep(interval)

    @property
    def control_plane_url(self) -> str:
        """What the agents dial: the in-cluster Service (the chart's ws://<release>-api:8000) when pods have
        their own network, else the API's own port."""
        if self.network is not None:
            return f"ws://{API_SERVICE}:{API_SERVICE_PORT}"
        return f"ws://127.0.0.1:{self.api_port}"

    def agent_id(self, index: int, cluster: int = 1) -> str:
        """The fixed id of agent Deployment `index` (static manifests' shape); the same prefix in every
        cluster (`k8s-sandbox-c2-1` in cluster 2)."""
        return f"{AGENT_ID_PREFIX}-{index}" if cluster == 1 else f"{AGENT_ID_PREFIX}-c{cluster}-{index}"

    @property
    def ids_per_pod(self) -> bool:
        """The chart's `$(AGENT_ID_PREFIX)-$(POD_NAME)` ids (as built, or with the fault); else fixed ids."""
        return self.profile.agent_id_per_pod or "agent-id-per-pod" in self.faults

    @property
    def agent_ha(self) -> bool:
        """Replicas sharing a fixed id run HA (ENABLE_HA=true): one leader per id holds the Lease and
        connects, the others stand by — what StreamSpace's HA procedure assumes (contract §4.6)."""
        return not self.ids_per_pod and self.options.agent_replicas > 1

    @property
    def agents_expected_online(self) -> int:
        per_cluster = self.options.agents * (1 if self.agent_ha else self.options.agent_replicas)
        return per_cluster * self.options.clusters

    @property
    def _agent_kubeconfig(self) -> str:
        return "kubeconfig-agent" if "vnc-tunnel-rbac" in self.faults else "kubeconfig-pods"

    def agent_deployment(self, index: int, cluster: int = 1) -> Dict[str, Any]:
        from chaosstream.sandbox.clusters import region_of

        pod_kubeconfig = self._agent_kubeconfig if cluster == 1 else f"kubeconfig-pods-{cluster}"
        name = agent_deployment_name(index)
        labels = dict(AGENT_LABELS, **{"sandbox.streamspace.io/agent": str(index)})
        env: List[Dict[str, Any]] = [
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "CONTROL_PLANE_URL", "value": self.control_plane_url},
            {"name": "AGENT_API_KEY", "value": self.bootstrap_key},
            {"name": "PLATFORM", "value": "kubernetes"},
            {"name": "REGION", "value": region_of(cluster)},
            # k8s-agent-deployment.yaml:62-64: NAMESPACE = sessionNamespace, else the release namespace
            {"name": "NAMESPACE", "value": self.session_namespace},
            {"name": "KUBECONFIG", "value": str(self.state_dir / pod_kubeconfig)},
            {"name": "HEALTH_CHECK_INTERVAL", "value": _go_duration(self.timers.heartbeat_interval)},
            {"name": "SANDBOX_TIMERS", "value": self.timers.to_json()},
            {"name": "SANDBOX_FAULTS", "value": ",".join(sorted(self.faults))},
            {"name": "SANDBOX_PROFILE", "value": self.profile.name},
        ]
        if self.ids_per_pod:
            # chart/templates/k8s-agent-deployment.yaml:45-52: AGENT_ID="$(AGENT_ID_PREFIX)-$(POD_NAME)",
            # expanded by the kubelet (processruntime.expand_refs): every pod is a new agent.
            env.append({"name": "AGENT_ID_PREFIX", "value": AGENT_ID_PREFIX})
            env.append({"name": "AGENT_ID", "value": "$(AGENT_ID_PREFIX)-$(POD_NAME)"})
        else:
            # static manifests (agents/k8s-agent/deployments/*.yaml): one fixed id, kept across restarts
            env.append({"name": "AGENT_ID", "value": self.agent_id(index, cluster)})
            if self.agent_ha:
                env.append({"name": "ENABLE_HA", "value": "true"})
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": NAMESPACE, "labels": dict(AGENT_LABELS)},
            "spec": {
                "replicas": self.options.agent_replicas,
                "selector": {
                    "matchLabels": {
                        "app.kubernetes.io/component": "k8s-agent",
                        "sandbox.streamspace.io/agent": str(index),
                    }
                },
                "template": {
                    "metadata": {"labels": labels, "annotations": {PROCESS_ANNOTATION: "agent"}},
                    "spec": {
                        "serviceAccountName": "streamspace-agent",
                        "terminationGracePeriodSeconds": 30,
                        # Compliant with the `restricted` Pod Security level, as a hardened install is.
                        "securityContext": {
                            "runAsNonRoot": True,
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "containers": [
                            {
                                "name": "k8s-agent",
                                "image": "ghcr.io/streamspace-dev/streamspace-k8s-agent:sandbox",
                                "env": env,
                                "securityContext": {
                                    "allowPrivilegeEscalation": False,
                                    "capabilities": {"drop": ["ALL"]},
                                },
                            }
                        ],
                    },
                },
            },
        }

    async def _wait_for_agents(self, timeout: float) -> None:
        """Wait until every agent is online; approve pending agents as an operator would."""
        deadline = time.monotonic() + timeout
        last: List[Any] = []
        while time.monotonic() < deadline:
            rows = await asyncio.to_thread(self._agent_rows)
            last = rows
            pending = [r[0] for r in rows if r[2] == "pending"]
            if pending:
                await asyncio.to_thread(self._approve, pending)
            # online *and* on its WebSocket: as built a re-registration marks a row online before the agent
            # (approved meanwhile) connects, and a session placed then would never start
            connected = await asyncio.to_thread(self._connected_ids)
            online = [r for r in rows if r[1] == "online" and r[0] in connected]
            if len(online) >= self.agents_expected_online:
                return
            await asyncio.sleep(0.1)
        raise SandboxError(
            f"Agents did not come online within {timeout:g}s (seen: {last}); see the pod logs in {self.state_dir / 'logs'}."
        )

    def _agent_rows(self) -> List[Any]:
        with psycopg.connect(self.dsn) as conn:
            return conn.execute("SELECT agent_id, status, approval_status, region FROM agents").fetchall()

    def _connected_ids(self) -> set:
        """Agents whose latest hub event (sandbox ground truth) is a connect."""
        with psycopg.connect(self.dsn) as conn:
            rows = conn.execute(
                "SELECT DISTINCT ON (agent_id) agent_id, status FROM sandbox_agent_events ORDER BY agent_id, at DESC"
            ).fetchall()
        return {r[0] for r in rows if r[1] == "online"}

    def _approve(self, agent_ids: List[str]) -> None:
        import httpx

        base = f"http://127.0.0.1:{self.api_port}"
        with httpx.Client(base_url=base, timeout=10) as client:
            token = client.post(
                "/api/v1/auth/login", json={"username": "admin", "password": self.admin_password}
            ).json()["token"]
            for agent_id in agent_ids:
                client.post(
                    f"/api/v1/admin/agents/{agent_id}/approve", headers={"Authorization": f"Bearer {token}"}
                )

    def env(self) -> Dict[str, str]:
        """What experiments need to run against this sandbox."""
        values = {
            "STREAMSPACE_API_URL": f"http://127.0.0.1:{self.api_port}",
            "STREAMSPACE_USERNAME": "admin",
            "STREAMSPACE_PASSWORD": self.admin_password,
            "STREAMSPACE_DB_DSN": self.dsn,
            "KUBECONFIG": str(self.state_dir / "kubeconfig"),
            "STREAMSPACE_NAMESPACE": NAMESPACE,
            "STREAMSPACE_SESSION_NAMESPACE": self.session_namespace,
            # persistent homes need the StorageClass the agent hard-codes (agent_k8s_operations.go:543)
            "STREAMSPACE_SESSION_PERSISTENT_HOME": str("standard" in self.storage_classes).lower(),
            "STREAMSPACE_AGENT_ID": self.first_agent_id,
            "STREAMSPACE_AGENT_ID_PREFIX": AGENT_ID_PREFIX,
            # agents register with their cluster's REGION: it scopes the agent probes to this cluster
            "STREAMSPACE_AGENT_REGION": "sandbox",
            "STREAMSPACE_SANDBOX_CLUSTERS": str(self.options.clusters),
            "STREAMSPACE_KUBE_CONTEXTS": ",".join(["sandbox"] + [m.context for m in self.members]),
            # the seeded users: as built each has the default quota (5 sessions, 4000m)
            "STREAMSPACE_SESSION_USERS": "admin,user1",
            "STREAMSPACE_AGENTS": str(self.options.agents),
            "STREAMSPACE_SANDBOX_STATE": str(self.state_dir),
            "STREAMSPACE_SANDBOX_TIMERS": self.options.timers,
            "STREAMSPACE_SANDBOX_PROFILE": self.profile.name,
            "STREAMSPACE_AGENT_REPLICAS": str(self.options.agent_replicas),
            "STREAMSPACE_AGENT_IDS": "per-pod" if self.ids_per_pod else "fixed",
            "STREAMSPACE_SANDBOX_FAULTS": ",".join(sorted(self.faults)),
            "STREAMSPACE_SANDBOX_NETWORK": "on" if self.network else "off",
            "STREAMSPACE_SANDBOX_IPV6": "on" if self.network and self.network.v6 else "off",
        }
        values.update({k: f"{v:g}" for k, v in self.timers.objectives().items()})
        return values

    def _write_env_file(self) -> None:
        lines = [f"{k}={v}" for k, v in self.env().items()]
        self.env_file.write_text("\n".join(lines) + "\n")
        self.env_file.chmod(0o600)
        for member in self.members:  # sandbox-N.env: the same install seen from cluster N
            env = dict(self.env(), **member.env_overrides())
            path = self.state_dir / f"sandbox-{member.number}.env"
            path.write_text("\n".join(f"{k}={v}" for k, v in env.items()) + "\n")
            path.chmod(0o600)
        (self.state_dir / "sandbox.json").write_text(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "api_port": self.api_port,
                    "kube_url": self.emulator.url if self.emulator else None,
                }
            )
        )

    # -- restart one component ---------------------------------------------------------------------------
    async def restart(self, component: str) -> str:
        """Restart one component in place (same port, same data); returns a one-line summary.

        * ``postgres``: the embedded server is stopped and started on the same port and data directory
          (every client connection drops; the control plane's and the probes' connections must recover).
        * ``kube``: the emulator's HTTP server and controller loop stop (watches and exec streams are cut,
          connections are refused meanwhile) and start again on the same port. Its object store is kept
          (what etcd would keep across a kube-apiserver restart) and so are the running pods (the kubelet
          and their processes are independent of the API server, as on a real node).
        * ``api``: the control plane app is cleaned up (agent WebSockets close, sweeper and dispatcher
          stop) and a new one serves the same port from the same database; agents reconnect.
        """
        started = time.monotonic()
        if component == "postgres":
            if self.postgres is None:
                raise SandboxError(
                    "This sandbox uses an external PostgreSQL (--db-dsn): restart that server yourself."
                )
            await asyncio.to_thread(self.postgres.restart)
            what = f"PostgreSQL restarted on port {self.postgres.port}"
        elif component == "kube":
            emulator = self.emulator
            if emulator is None:
                raise SandboxError("The Kubernetes emulator is not running.")
            await emulator.restart_api_server()  # same port (now fixed), same store and pods
            what = f"Kubernetes emulator restarted on port {emulator.port} (objects and pods kept)"
        elif component == "api":
            count = await self.api.restart_all() if self.api is not None else 0
            what = f"control plane restarted ({count} API replica(s) behind port {self.api_port})"
        else:
            raise SandboxError(f"Unknown component {component!r}: use postgres, kube or api.")
        log.info("%s in %.2fs", what, time.monotonic() - started)
        return f"{what} in {time.monotonic() - started:.2f}s."

    # -- stop ------------------------------------------------------------------------------------------
    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for member in self.members:
            await member.stop()
        # the control plane's pods are stopped below, in order (agents first, then the API, then the DB)
        if self.api is not None:
            self.api.detached = True
        if self.postgres_pod is not None:
            self.postgres_pod.detached = True
        if self.emulator is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.emulator.stop(), timeout=15)
        if self.api is not None:
            with contextlib.suppress(Exception):
                await self.api.stop_all()
        with contextlib.suppress(Exception):
            await self.balancer.close()
        if self.postgres is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.postgres.stop)
        self.kill_leftover_processes()
        if self.enforcer is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.enforcer.teardown)
        if self.network is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.network.teardown)
        for name in ("sandbox.env", "sandbox.json", "kubeconfig", "kubeconfig-pods", "kubeconfig-agent"):
            (self.state_dir / name).unlink(missing_ok=True)
        for member in self.members:
            (self.state_dir / f"sandbox-{member.number}.env").unlink(missing_ok=True)
        shutil.rmtree(self.state_dir / "pg", ignore_errors=True)
