"""The agent's ServiceAccount, Role and RoleBinding as the Helm chart creates them (contract §4.3).

Used by the fault ``vnc-tunnel-rbac``: the agents then run with a token of ServiceAccount
``streamspace-agent`` bound to the chart's Role without its ``pods/portforward`` rule — the defect
StreamSpace's own validation found (``.claude/reports/P0_MANIFEST_001_VALIDATION_RESULTS.md:252``, fixed as
P1-VNC-RBAC-001 in ``chart/templates/rbac.yaml:145-148``): sessions start and run, every VNC tunnel is
refused with 403. Without the fault the sandbox's agents use the emulator's admin identity.
"""

from typing import Any, Dict, List

SERVICE_ACCOUNT = "streamspace-agent"
ROLE = "streamspace-k8s-agent"
_ALL = ["get", "list", "watch", "create", "update", "patch", "delete"]

# chart/templates/rbac.yaml:107-173 (Role <fullname>-k8s-agent)
ROLE_RULES: List[Dict[str, Any]] = [
    {"apiGroups": ["stream.space"], "resources": ["templates"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["stream.space"], "resources": ["sessions"], "verbs": _ALL},
    {"apiGroups": ["stream.space"], "resources": ["sessions/status"], "verbs": ["get", "update", "patch"]},
    {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": _ALL},
    {"apiGroups": [""], "resources": ["services"], "verbs": _ALL},
    {"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": _ALL},
    {"apiGroups": [""], "resources": ["pods/portforward"], "verbs": ["create", "get"]},
    {"apiGroups": [""], "resources": ["persistentvolumeclaims"], "verbs": _ALL},
    {"apiGroups": [""], "resources": ["configmaps"], "verbs": _ALL},
    {"apiGroups": [""], "resources": ["secrets"], "verbs": _ALL},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": _ALL},
]


def agent_rbac_objects(namespace: str, portforward: bool = True) -> List[Dict[str, Any]]:
    """ServiceAccount, Role and RoleBinding; ``portforward=False`` leaves the port-forward rule out."""
    rules = [r for r in ROLE_RULES if portforward or "pods/portforward" not in r["resources"]]
    meta = {"namespace": namespace, "labels": {"app.kubernetes.io/component": "k8s-agent"}}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": SERVICE_ACCOUNT, **meta}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": ROLE, **meta},
            "rules": rules,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": ROLE, **meta},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": ROLE},
            "subjects": [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": namespace}],
        },
    ]
