"""The NetworkPolicy a partition creates must not depend on `endPort` (some CNIs ignore it and would then
cut DNS and the kube-apiserver too): judged by the sandbox's CNI model in both modes."""

from chaosstream.faults.partition import _egress_except
from chaosstream.sandbox.netpol import denied

API = ("10.244.1.7", 8080)
KUBE = ("10.0.0.1", 6443)
DNS = ("10.96.0.10", 53)
POD = {"metadata": {"labels": {"chaosstream.io/partition-target": "abc-0", "app": "agent"}}}


def _policy(egress):
    return {
        "spec": {
            "podSelector": {"matchLabels": {"chaosstream.io/partition-target": "abc-0"}},
            "policyTypes": ["Egress"],
            "egress": egress,
        }
    }


def test_the_partition_policy_cuts_only_the_route_with_or_without_endport_support():
    policy = _policy(_egress_except([["10.96.5.10", 8000], list(API)]))
    assert "endPort" not in str(policy)
    for honour in (True, False):
        assert denied([policy], POD, [API, KUBE, DNS], honour_end_port=honour) == {API}


def test_a_port_range_policy_would_cut_the_kube_apiserver_where_endport_is_ignored():
    """Why: the old allow-all-but-one-port shape relied on endPort."""
    ranges = [
        {"protocol": "TCP", "port": 1, "endPort": 8079},
        {"protocol": "TCP", "port": 8081, "endPort": 65535},
    ]
    policy = _policy([{"ports": ranges}])
    assert denied([policy], POD, [API, KUBE], honour_end_port=True) == {API}
    assert KUBE in denied([policy], POD, [API, KUBE], honour_end_port=False)


def test_other_replicas_are_not_selected():
    policy = _policy(_egress_except([list(API)]))
    other = {"metadata": {"labels": {"app": "agent"}}}
    assert denied([policy], other, [API], honour_end_port=True) == set()


def test_ipv6_route_addresses_are_excepted_too():
    policy = _policy(_egress_except([list(API), ["fd00::7", 8080]]))
    assert denied([policy], POD, [("fd00::7", 8080), ("fd00::1", 443)]) == {("fd00::7", 8080)}
