"""The table of API resources the emulator serves (group, version, plural, kind, scope, verbs)."""

from __future__ import annotations

from dataclasses import dataclass, field

ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


@dataclass(frozen=True)
class ResourceType:
    """One served resource, e.g. ``apps/v1 deployments``."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    has_status: bool = False
    subresources: tuple[str, ...] = ()
    verbs: tuple[str, ...] = tuple(ALL_VERBS)
    crd: bool = False
    categories: tuple[str, ...] = ()
    # Field selectors a real apiserver accepts for this kind, beyond metadata.name/namespace.
    fields: tuple[str, ...] = field(default=())

    @property
    def api_version(self) -> str:
        """``v1`` for the core group, ``group/version`` otherwise."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        """Lower-case kind, which is what discovery reports as ``singularName``."""
        return self.kind.lower()

    @property
    def key(self) -> str:
        """Store key: ``group/plural`` (one served version per resource)."""
        return f"{self.group}/{self.plural}"

    @property
    def list_kind(self) -> str:
        """``PodList`` for ``Pod``."""
        return f"{self.kind}List"


_WORKLOAD_STATUS = ("status", "scale")
_POD_FIELDS = (
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.nominatedNodeName",
)
_EVENT_FIELDS = (
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
)

RESOURCES: tuple[ResourceType, ...] = (
    ResourceType(
        "",
        "v1",
        "namespaces",
        "Namespace",
        False,
        ("ns",),
        True,
        ("status", "finalize"),
        ("create", "delete", "get", "list", "patch", "update", "watch"),
        fields=("status.phase",),
    ),
    ResourceType(
        "", "v1", "nodes", "Node", False, ("no",), True, ("status",), fields=("spec.unschedulable",)
    ),
    ResourceType(
        "",
        "v1",
        "pods",
        "Pod",
        True,
        ("po",),
        True,
        ("status", "exec", "eviction", "ephemeralcontainers", "log", "attach", "portforward"),
        categories=("all",),
        fields=_POD_FIELDS,
    ),
    ResourceType("", "v1", "services", "Service", True, ("svc",), True, ("status",), categories=("all",)),
    ResourceType("", "v1", "endpoints", "Endpoints", True, ("ep",)),
    ResourceType("", "v1", "configmaps", "ConfigMap", True, ("cm",)),
    ResourceType("", "v1", "secrets", "Secret", True, (), fields=("type",)),
    ResourceType("", "v1", "serviceaccounts", "ServiceAccount", True, ("sa",), False, ("token",)),
    ResourceType("", "v1", "events", "Event", True, ("ev",), fields=_EVENT_FIELDS),
    ResourceType(
        "", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", True, ("pvc",), True, ("status",)
    ),
    ResourceType(
        "apps",
        "v1",
        "deployments",
        "Deployment",
        True,
        ("deploy",),
        True,
        _WORKLOAD_STATUS,
        categories=("all",),
    ),
    ResourceType(
        "apps",
        "v1",
        "replicasets",
        "ReplicaSet",
        True,
        ("rs",),
        True,
        _WORKLOAD_STATUS,
        categories=("all",),
        fields=("status.replicas",),
    ),
    ResourceType(
        "apps",
        "v1",
        "statefulsets",
        "StatefulSet",
        True,
        ("sts",),
        True,
        _WORKLOAD_STATUS,
        categories=("all",),
    ),
    ResourceType("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", True, ("netpol",)),
    ResourceType("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True),
    ResourceType(
        "policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", True, ("pdb",), True, ("status",)
    ),
    ResourceType("coordination.k8s.io", "v1", "leases", "Lease", True),
    # RBAC, enforced for ServiceAccount tokens by rbac.py.
    ResourceType("rbac.authorization.k8s.io", "v1", "roles", "Role", True),
    ResourceType("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True),
    ResourceType("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False),
    ResourceType("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False),
    # create-only and never stored: answered by rbac.Rbac.access_review
    ResourceType(
        "authorization.k8s.io",
        "v1",
        "selfsubjectaccessreviews",
        "SelfSubjectAccessReview",
        False,
        verbs=("create",),
    ),
    ResourceType("batch", "v1", "cronjobs", "CronJob", True, ("cj",), True, ("status",)),
    ResourceType("batch", "v1", "jobs", "Job", True, (), True, ("status",)),
    ResourceType(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        False,
        ("crd", "crds"),
        True,
        ("status",),
        categories=("api-extensions",),
    ),
    ResourceType("storage.k8s.io", "v1", "storageclasses", "StorageClass", False, ("sc",)),
    ResourceType(
        "stream.space", "v1alpha1", "sessions", "Session", True, ("ss",), True, ("status",), crd=True
    ),
    ResourceType(
        "stream.space", "v1alpha1", "templates", "Template", True, ("tpl",), True, ("status",), crd=True
    ),
)

BY_KEY: dict[str, ResourceType] = {r.key: r for r in RESOURCES}
BY_GROUP_VERSION: dict[str, dict[str, ResourceType]] = {}
BY_KIND: dict[tuple[str, str], ResourceType] = {}
for _r in RESOURCES:
    BY_GROUP_VERSION.setdefault(_r.api_version, {})[_r.plural] = _r
    BY_KIND[(_r.api_version, _r.kind)] = _r

POD = BY_KEY["/pods"]
NAMESPACE = BY_KEY["/namespaces"]
NODE = BY_KEY["/nodes"]
EVENT = BY_KEY["/events"]
DEPLOYMENT = BY_KEY["apps/deployments"]
REPLICASET = BY_KEY["apps/replicasets"]
STATEFULSET = BY_KEY["apps/statefulsets"]


def lookup_kind(api_version: str, kind: str) -> ResourceType:
    """Resource for an ``apiVersion``/``kind`` pair; raises KeyError when not served."""
    return BY_KIND[(api_version, kind)]


def groups() -> dict[str, list[str]]:
    """Named API groups and their versions, in a stable order (core group excluded)."""
    out: dict[str, list[str]] = {}
    for r in RESOURCES:
        if r.group and r.version not in out.setdefault(r.group, []):
            out[r.group].append(r.version)
    return out
