"""NetworkPolicy enforcement for the sandbox: the role a policy-enforcing CNI plays in a cluster.

Only egress matters for our partitions: for every pod selected by a policy with `Egress` in its
`policyTypes`, the destinations the sandbox serves (the API's endpoint and the Kubernetes API) that no
egress rule allows are dropped with iptables in the host namespace, after the Service DNAT (see
`NetpolEnforcer` for the `--cni` behaviours).
"""

import ipaddress
import subprocess
from typing import Any, Dict, Iterable, List, Set, Tuple

from chaosstream.sandbox.kube.selectors import labels_match, selector_from_match

__all__ = ["denied", "denied_ports", "NetpolEnforcer", "NETPOL_COMMENT"]

NETPOL_COMMENT = "chaosstream-sandbox-netpol"


def _peer_allows(peer: Dict[str, Any], address: str) -> bool:
    block = peer.get("ipBlock")
    if block is None:
        # pod/namespace selectors: the sandbox API is not a pod, so only an empty selector admits it.
        sel = peer.get("podSelector")
        ns_sel = peer.get("namespaceSelector")
        return (sel is not None and not sel) or (ns_sel is not None and not ns_sel and sel is None)
    ip = ipaddress.ip_address(address)
    if ip not in ipaddress.ip_network(block.get("cidr", "0.0.0.0/0"), strict=False):
        return False
    return not any(ip in ipaddress.ip_network(cidr, strict=False) for cidr in block.get("except") or [])


def _port_allowed(rule_ports: List[Dict[str, Any]], port: int, honour_end_port: bool = True) -> bool:
    if not rule_ports:
        return True
    for item in rule_ports:
        if (item.get("protocol") or "TCP") != "TCP":
            continue
        start = item.get("port")
        if start is None:
            return True
        if not isinstance(start, int):
            continue  # named ports do not apply to the sandbox's plain listeners
        end = (item.get("endPort") or start) if honour_end_port else start
        if start <= port <= end:
            return True
    return False


def denied(
    policies: Iterable[Dict[str, Any]],
    pod: Dict[str, Any],
    destinations: Iterable[Tuple[str, int]],
    honour_end_port: bool = True,
) -> Set[Tuple[str, int]]:
    """The (address, port) destinations that the policies selecting `pod` do not allow for egress."""
    labels = pod["metadata"].get("labels") or {}
    selecting = [
        p
        for p in policies
        if "Egress" in ((p.get("spec") or {}).get("policyTypes") or [])
        and labels_match(selector_from_match((p.get("spec") or {}).get("podSelector") or {}), labels)
    ]
    if not selecting:
        return set()
    out = set()
    for address, port in destinations:
        allowed = False
        for policy in selecting:
            for rule in policy["spec"].get("egress") or []:
                peers = rule.get("to") or []
                if peers and not any(_peer_allows(peer, address) for peer in peers):
                    continue
                if _port_allowed(rule.get("ports") or [], port, honour_end_port):
                    allowed = True
        if not allowed:
            out.add((address, port))
    return out


def denied_ports(
    policies: Iterable[Dict[str, Any]], pod: Dict[str, Any], ports: Iterable[int], address: str
) -> Set[int]:
    """The ports (of `ports`, at `address`) that the policies selecting `pod` do not allow for egress."""
    return {port for _, port in denied(policies, pod, [(address, p) for p in ports])}


class NetpolEnforcer:
    """Reconciles iptables DROP rules with the NetworkPolicies of the namespace, as a CNI would.

    Rules live in the host namespace (chain `CSS<k>-NETPOL`, jumped to from INPUT), after the Service DNAT,
    matching the pod's source address: that is where a CNI enforces egress. `cni` picks the behaviour:
    `enforcing` (every packet), `ignore-endport` (a port range counts as its first port only),
    `new-connections-only` (connection setup only, as Calico: established connections keep flowing),
    `none` (policies are stored and ignored).
    """

    def __init__(
        self,
        emulator: Any,
        runtime: Any,
        namespace: str,
        destinations: List[Tuple[str, int]],
        cni: str = "enforcing",
        instance: int = 0,
    ) -> None:
        self.emulator = emulator
        self.runtime = runtime
        self.namespace = namespace
        self.destinations = destinations
        self.cni = cni
        self.chain = f"CSS{instance}-NETPOL"
        self._applied: Dict[str, Set[Tuple[str, int]]] = {}
        self._ips: Dict[str, str] = {}
        self._ready = False

    def _setup(self) -> None:
        if self._ready:
            return
        self._iptables("-N", self.chain)
        self._iptables("-F", self.chain)
        while self._iptables("-D", "INPUT", "-j", self.chain) == 0:
            pass
        self._iptables("-I", "INPUT", "-j", self.chain)
        self._ready = True

    def teardown(self) -> None:
        while self._iptables("-D", "INPUT", "-j", self.chain) == 0:
            pass
        self._iptables("-F", self.chain)
        self._iptables("-X", self.chain)
        self._ready = False

    def reconcile(self) -> None:
        network = self.runtime.network
        if network is None or self.cni == "none":
            return
        self._setup()
        policies = self.emulator.list_objects("networking.k8s.io/v1", "NetworkPolicy", self.namespace)
        pods = self.emulator.list_objects("v1", "Pod", self.namespace)
        live = set()
        for pod in pods:
            uid = pod["metadata"]["uid"]
            ip = network.ip_of(uid)
            if ip is None:
                continue
            live.add(uid)
            self._ips[uid] = ip
            want = denied(policies, pod, self.destinations, self.cni != "ignore-endport")
            have = self._applied.get(uid, set())
            for dest in want - have:
                self._rule("-A", ip, dest)
            for dest in have - want:
                self._rule("-D", ip, dest)
            self._applied[uid] = want
        for uid in set(self._applied) - live:
            for dest in self._applied.pop(uid, set()):
                self._rule("-D", self._ips.get(uid, ""), dest)

    def _rule(self, op: str, source: str, dest: Tuple[str, int]) -> None:
        state = ["-m", "conntrack", "--ctstate", "NEW"] if self.cni == "new-connections-only" else []
        self._iptables(
            op,
            self.chain,
            "-s",
            source,
            "-d",
            dest[0],
            "-p",
            "tcp",
            "--dport",
            str(dest[1]),
            *state,
            "-m",
            "comment",
            "--comment",
            NETPOL_COMMENT,
            "-j",
            "DROP",
        )

    @staticmethod
    def _iptables(*args: str) -> int:
        return subprocess.run(["iptables", *args], capture_output=True, timeout=10, check=False).returncode
