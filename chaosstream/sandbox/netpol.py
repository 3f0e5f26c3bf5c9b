"""NetworkPolicy enforcement for the sandbox: the role a policy-enforcing CNI plays in a cluster.

Only egress matters for our partitions: for every agent pod selected by a policy with `Egress` in its
`policyTypes`, the TCP ports that no egress rule allows among the ports the sandbox serves (API and
Kubernetes API) are dropped with iptables inside the pod's network namespace.
"""

import ipaddress
import subprocess
from typing import Any, Dict, Iterable, List, Set

from chaosstream.sandbox.kube.selectors import labels_match, selector_from_match

__all__ = ["denied_ports", "NetpolEnforcer", "NETPOL_COMMENT"]

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


def _port_allowed(rule_ports: List[Dict[str, Any]], port: int) -> bool:
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
        end = item.get("endPort") or start
        if start <= port <= end:
            return True
    return False


def denied_ports(
    policies: Iterable[Dict[str, Any]], pod: Dict[str, Any], ports: Iterable[int], address: str
) -> Set[int]:
    """The ports (of `ports`, at `address`) that the policies selecting `pod` do not allow for egress."""
    labels = pod["metadata"].get("labels") or {}
    selecting = [
        p
        for p in policies
        if "Egress" in ((p.get("spec") or {}).get("policyTypes") or [])
        and labels_match(selector_from_match((p.get("spec") or {}).get("podSelector") or {}), labels)
    ]
    if not selecting:
        return set()
    denied = set()
    for port in ports:
        allowed = False
        for policy in selecting:
            for rule in policy["spec"].get("egress") or []:
                peers = rule.get("to") or []
                if peers and not any(_peer_allows(peer, address) for peer in peers):
                    continue
                if _port_allowed(rule.get("ports") or [], port):
                    allowed = True
        if not allowed:
            denied.add(port)
    return denied


class NetpolEnforcer:
    """Reconciles iptables DROP rules in pod namespaces with the NetworkPolicies of the namespace."""

    def __init__(self, emulator: Any, runtime: Any, namespace: str, ports: List[int], address: str) -> None:
        self.emulator = emulator
        self.runtime = runtime
        self.namespace = namespace
        self.ports = ports
        self.address = address
        self._applied: Dict[str, Set[int]] = {}

    def reconcile(self) -> None:
        network = self.runtime.network
        if network is None:
            return
        policies = self.emulator.list_objects("networking.k8s.io/v1", "NetworkPolicy", self.namespace)
        pods = self.emulator.list_objects("v1", "Pod", self.namespace)
        live = set()
        for pod in pods:
            uid = pod["metadata"]["uid"]
            ns = network.namespace_of(uid)
            if ns is None:
                continue
            live.add(uid)
            want = denied_ports(policies, pod, self.ports, self.address)
            have = self._applied.get(uid, set())
            for port in want - have:
                self._iptables(ns, "-I", port)
            for port in have - want:
                self._iptables(ns, "-D", port)
            self._applied[uid] = want
        for uid in set(self._applied) - live:
            self._applied.pop(uid, None)

    def _iptables(self, ns: str, op: str, port: int) -> None:
        subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                ns,
                "iptables",
                op,
                "OUTPUT",
                "-p",
                "tcp",
                "--dport",
                str(port),
                "-d",
                self.address,
            ]
            + ["-m", "comment", "--comment", NETPOL_COMMENT, "-j", "DROP"],
            capture_output=True,
            timeout=10,
            check=False,
        )
