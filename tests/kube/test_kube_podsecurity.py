"""Pod Security Admission in the emulator: Kubernetes' own wording, per level."""

import pytest

from chaosstream.sandbox.kube.errors import ApiError
from chaosstream.sandbox.kube.podsecurity import check_pod, violations

NET_ADMIN = {"name": "dbg", "image": "x", "securityContext": {"capabilities": {"add": ["NET_ADMIN"]}}}
HARDENED = {
    "name": "agent",
    "image": "y",
    "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
}
POD_SC = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}


def _ns(level):
    return {"metadata": {"name": "s", "labels": {"pod-security.kubernetes.io/enforce": level}}}


def test_baseline_refuses_net_admin_with_the_apiservers_message():
    with pytest.raises(ApiError) as info:
        check_pod(_ns("baseline"), "p", {"containers": [HARDENED], "ephemeralContainers": [NET_ADMIN]})
    assert info.value.code == 403 and info.value.reason == "Forbidden"
    assert info.value.message == (
        'pods "p" is forbidden: violates PodSecurity "baseline:latest": non-default capabilities '
        '(container "dbg" must not include "NET_ADMIN" in securityContext.capabilities.add)'
    )


def test_privileged_and_unlabelled_namespaces_allow_it():
    spec = {"containers": [HARDENED], "ephemeralContainers": [NET_ADMIN]}
    check_pod(_ns("privileged"), "p", spec)
    check_pod({"metadata": {"name": "s"}}, "p", spec)


def test_restricted_names_every_violation_and_accepts_a_hardened_pod():
    assert violations("restricted", {"securityContext": POD_SC, "containers": [HARDENED]}) == []
    found = violations(
        "restricted",
        {"securityContext": POD_SC, "containers": [HARDENED], "ephemeralContainers": [NET_ADMIN]},
    )
    assert found == [
        'allowPrivilegeEscalation != false (container "dbg" must set securityContext.allowPrivilegeEscalation=false)',
        'unrestricted capabilities (container "dbg" must set securityContext.capabilities.drop=["ALL"]; '
        'container "dbg" must not include "NET_ADMIN" in securityContext.capabilities.add)',
    ]
