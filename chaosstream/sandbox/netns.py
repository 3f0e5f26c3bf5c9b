"""Per-pod network namespaces on a sandbox bridge, so network chaos really cuts packets.

Each sandbox instance owns one bridge `cssbr<k>` with 169.254.<k>.1/24 (link-local, never routed) and
one namespace `css<k>-<pod hash>` per running pod, linked by a veth pair. Everything carries the
instance number, so a second `up` after a crash can find and remove exactly its own leftovers.

Services as a cluster has them: ClusterIPs in 10.96.<k>.0/24, reached through the pod's default route,
DNATed to their endpoints in the host namespace as kube-proxy does (chain `CSS<k>-SVC` in nat PREROUTING:
the pod's OUTPUT sees ClusterIP:port), or, with `service_route="socket-lb"`, in the pod's own nat OUTPUT
before its filter OUTPUT (as a socket-LB dataplane rewrites connect(): the pod sees endpoint:targetPort).
Service names resolve through a per-namespace hosts file (`/etc/netns/<ns>/hosts`, which `ip netns exec`
binds over /etc/hosts).

Dual stack where the kernel allows: pods also get fd00:c55:<k>::<n>/64 and Services an IPv6 ClusterIP
(fd00:c55:<k>:96::<n>) DNATed with ip6tables; when any IPv6 step fails the sandbox stays IPv4-only.
"""

import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import IO, Dict, List, Optional, Tuple

__all__ = ["NetworkUnavailable", "SandboxNetwork", "network_support"]


class NetworkUnavailable(RuntimeError):
    """Network namespaces cannot be used here (not root, or ip/iptables missing)."""


def network_support() -> Optional[str]:
    """None when network namespaces work here, else the reason in one sentence."""
    if os.geteuid() != 0:
        return "network faults need root (the sandbox puts each pod in its own network namespace)"
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            return f"network faults need '{tool}': install the Debian packages iproute2 and iptables"
    return None


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), check=check, capture_output=True, text=True, timeout=20)


def claim_instance(preferred: int) -> Tuple[int, IO[str]]:
    """An instance number no other live sandbox on this machine holds, `preferred` first (the state dir's
    own, so an `up` after a crash finds its leftovers): an exclusive lock on `<tmp>/chaosstream-instances/
    <k>.lock`, held through the returned file until the process ends. Without it two sandboxes started
    at once (parallel tests, two users) could hash to one number and clean up each other's network."""
    folder = Path(tempfile.gettempdir()) / "chaosstream-instances"
    folder.mkdir(mode=0o755, exist_ok=True)
    for step in range(250):
        instance = (preferred - 1 + step) % 250 + 1
        handle = open(folder / f"{instance}.lock", "a")  # noqa: SIM115 - held for the process's life
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        return instance, handle
    raise NetworkUnavailable("all 250 sandbox instance numbers are held by running sandboxes")


class SandboxNetwork:
    """The bridge and the pod namespaces of one sandbox instance."""

    def __init__(self, instance: int) -> None:
        if not 1 <= instance <= 250:
            raise ValueError("instance must be within 1..250")
        self.instance = instance
        self.bridge = f"cssbr{instance}"
        self.gateway = f"169.254.{instance}.1"
        self._next = 2
        self._pods: Dict[str, str] = {}  # pod uid -> namespace name
        self._ips: Dict[str, str] = {}
        self.api_address = f"169.254.{instance}.250"  # the control plane's "pod IP" (its endpoint)
        self.service_route = "kube-proxy"
        self.hosts: Dict[str, str] = {}  # service name -> ClusterIP
        self.services: List[Tuple[str, int, str, int]] = []  # (clusterIP, port, endpoint, targetPort)
        self.v6 = False
        self.gateway6 = f"fd00:c55:{instance:x}::1"
        self.api_address6 = f"fd00:c55:{instance:x}::fa"

    @property
    def svc_chain(self) -> str:
        return f"CSS{self.instance}-SVC"

    def cluster_ip(self, index: int) -> str:
        return f"10.96.{self.instance}.{index}"

    def cluster_ip6(self, index: int) -> str:
        return f"fd00:c55:{self.instance:x}:96::{index:x}"

    @staticmethod
    def _tool(address: str) -> str:
        return "ip6tables" if ":" in address else "iptables"

    def add_service(
        self, names: List[str], cluster_ip: str, port: int, endpoint: str, target_port: int
    ) -> None:
        """Route ClusterIP:port to endpoint:targetPort and make `names` resolve to the ClusterIP in pods."""
        if "." in cluster_ip:
            for name in names:
                self.hosts[name] = cluster_ip
        self.services.append((cluster_ip, port, endpoint, target_port))
        if self.service_route == "kube-proxy":
            _run(
                self._tool(cluster_ip),
                "-t",
                "nat",
                "-A",
                self.svc_chain,
                *self._dnat(cluster_ip, port, endpoint, target_port),
            )

    @staticmethod
    def _dnat(cluster_ip: str, port: int, endpoint: str, target_port: int) -> List[str]:
        return [
            "-d",
            cluster_ip,
            "-p",
            "tcp",
            "--dport",
            str(port),
            "-j",
            "DNAT",
            "--to-destination",
            f"[{endpoint}]:{target_port}" if ":" in endpoint else f"{endpoint}:{target_port}",
        ]

    @property
    def prefix(self) -> str:
        return f"css{self.instance}-"

    def setup(self) -> None:
        reason = network_support()
        if reason:
            raise NetworkUnavailable(reason)
        self.cleanup_leftovers()
        _run("ip", "link", "add", self.bridge, "type", "bridge")
        _run("ip", "addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        _run("ip", "addr", "add", f"{self.api_address}/32", "dev", self.bridge)
        _run("ip", "link", "set", self.bridge, "up")
        _run("iptables", "-t", "nat", "-N", self.svc_chain)
        _run("iptables", "-t", "nat", "-I", "PREROUTING", "-j", self.svc_chain)
        self._setup_v6()

    def _setup_v6(self) -> None:
        """Dual stack when the kernel and ip6tables allow it; otherwise IPv4 only, cleanly."""
        if shutil.which("ip6tables") is None:
            return
        try:
            _run("ip", "-6", "addr", "add", f"{self.gateway6}/64", "dev", self.bridge, "nodad")
            _run("ip", "-6", "addr", "add", f"{self.api_address6}/128", "dev", self.bridge, "nodad")
            _run("ip6tables", "-t", "nat", "-N", self.svc_chain)
            _run("ip6tables", "-t", "nat", "-I", "PREROUTING", "-j", self.svc_chain)
        except (subprocess.CalledProcessError, OSError):
            self._cleanup_v6_nat()
            return
        self.v6 = True

    def _remove_nat_chain(self, tool: str) -> bool:
        """Unhook and delete this instance's Service NAT chain with `tool` (iptables/ip6tables); True when
        the chain existed."""
        while _run(tool, "-t", "nat", "-D", "PREROUTING", "-j", self.svc_chain, check=False).returncode == 0:
            pass
        if _run(tool, "-t", "nat", "-F", self.svc_chain, check=False).returncode != 0:
            return False
        _run(tool, "-t", "nat", "-X", self.svc_chain, check=False)
        return True

    def _cleanup_v6_nat(self) -> None:
        if shutil.which("ip6tables") is not None:
            self._remove_nat_chain("ip6tables")

    def cleanup_leftovers(self) -> List[str]:
        """Remove this instance's namespaces and bridge, whoever left them."""
        removed = []
        listing = _run("ip", "netns", "list", check=False).stdout
        for line in listing.splitlines():
            name = line.split()[0] if line.split() else ""
            if name.startswith(self.prefix):
                _run("ip", "netns", "del", name, check=False)
                removed.append(name)
        if self._remove_nat_chain("iptables"):
            removed.append(self.svc_chain)
        self._cleanup_v6_nat()
        for stale in Path("/etc/netns").glob(f"{self.prefix}*"):
            shutil.rmtree(stale, ignore_errors=True)
        if _run("ip", "link", "show", self.bridge, check=False).returncode == 0:
            _run("ip", "link", "del", self.bridge, check=False)
            removed.append(self.bridge)
        return removed

    def add_pod(self, pod_uid: str) -> str:
        """Create the pod's namespace, wire it to the bridge and return its IP address."""
        if pod_uid in self._pods:
            return self._ips[pod_uid]
        if self._next > 254:
            raise NetworkUnavailable("the sandbox bridge ran out of addresses (253 pods)")
        digest = hashlib.sha1(pod_uid.encode()).hexdigest()[:8]
        ns = f"{self.prefix}{digest}"
        host_if = f"cv{self.instance}{digest[:8]}"[:15]
        ip = f"169.254.{self.instance}.{self._next}"
        self._next += 1
        _run("ip", "netns", "add", ns)
        try:
            _run("ip", "link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", ns)
            _run("ip", "link", "set", host_if, "master", self.bridge)
            _run("ip", "link", "set", host_if, "up")
            _run("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", "eth0")
            _run("ip", "-n", ns, "link", "set", "eth0", "up")
            _run("ip", "-n", ns, "link", "set", "lo", "up")
            _run("ip", "-n", ns, "route", "add", "default", "via", self.gateway)
            if self.v6:
                ip6 = f"fd00:c55:{self.instance:x}::{self._next - 1:x}"
                _run("ip", "-n", ns, "-6", "addr", "add", f"{ip6}/64", "dev", "eth0", "nodad")
                _run("ip", "-n", ns, "-6", "route", "add", "default", "via", self.gateway6)
            if self.service_route == "socket-lb":
                for cluster_ip, port, endpoint, target_port in self.services:
                    _run(
                        "ip",
                        "netns",
                        "exec",
                        ns,
                        self._tool(cluster_ip),
                        "-t",
                        "nat",
                        "-A",
                        "OUTPUT",
                        *self._dnat(cluster_ip, port, endpoint, target_port),
                    )
            etc = Path("/etc/netns") / ns
            etc.mkdir(parents=True, exist_ok=True)
            lines = ["127.0.0.1 localhost"]
            lines += [f"{addr} {name}" for name, addr in sorted(self.hosts.items())]
            (etc / "hosts").write_text("\n".join(lines) + "\n")
        except subprocess.CalledProcessError:
            shutil.rmtree(Path("/etc/netns") / ns, ignore_errors=True)
            _run("ip", "netns", "del", ns, check=False)
            raise
        self._pods[pod_uid] = ns
        self._ips[pod_uid] = ip
        return ip

    def ip_of(self, pod_uid: str) -> Optional[str]:
        return self._ips.get(pod_uid)

    def namespace_of(self, pod_uid: str) -> Optional[str]:
        return self._pods.get(pod_uid)

    def remove_pod(self, pod_uid: str) -> None:
        ns = self._pods.pop(pod_uid, None)
        self._ips.pop(pod_uid, None)
        if ns:
            # Deleting the namespace destroys its veth end, its iptables rules and its sockets.
            _run("ip", "netns", "del", ns, check=False)
            shutil.rmtree(Path("/etc/netns") / ns, ignore_errors=True)

    def wrap(self, pod_uid: str, argv: List[str]) -> List[str]:
        """argv that runs a command inside the pod's namespace."""
        ns = self._pods.get(pod_uid)
        if ns is None:
            raise NetworkUnavailable("the pod has no network namespace")
        return ["ip", "netns", "exec", ns, *argv]

    def teardown(self) -> None:
        for uid in list(self._pods):
            self.remove_pod(uid)
        self.cleanup_leftovers()
