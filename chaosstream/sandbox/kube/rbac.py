"""Authentication of ServiceAccount tokens and RBAC authorization, as the kube-apiserver does them.

* Tokens: `POST .../serviceaccounts/NAME/token` (TokenRequest, what `kubectl create token` calls) and
  Secrets of type `kubernetes.io/service-account-token` (filled on create) mint a bearer token for a
  ServiceAccount. A request with such a token is user `system:serviceaccount:NS:NAME` (groups
  `system:serviceaccounts`, `system:serviceaccounts:NS`, `system:authenticated`). The sandbox's admin
  token (and a request with no token: the sandbox's own components) is the all-powerful admin; any other
  token is 401.
* Authorization for service accounts: Role/ClusterRole rules bound by RoleBinding/ClusterRoleBinding
  (apiGroups, resources incl. `resource/subresource` and `*/subresource`, verbs, resourceNames), exactly
  Kubernetes' matching; a denial is Kubernetes' own 403 Status body. A WebSocket exec, attach or
  port-forward (a GET on pods/exec, pods/attach, pods/portforward) needs `get` and `create` (Kubernetes
  1.35, KEP-4006); their SPDY POST needs `create`. Discovery, /version and
  SelfSubjectAccessReview are open to every authenticated identity (system:discovery, system:basic-user).
* Every resource request of a service account is recorded (verb, resource, subresource, name) per
  identity; `GET /debug/rbac-trace` (admin only) returns it, so a test can compare it with the Role.
"""

from __future__ import annotations

import secrets as _secrets
from dataclasses import dataclass
from typing import Any

from .errors import ApiError
from .resources import BY_KEY

ADMIN_TOKEN = "sandbox-token"
ADMIN = "admin"
SA_TOKEN_TYPE = "kubernetes.io/service-account-token"


@dataclass(frozen=True)
class Attributes:
    """What one request asks to do (Kubernetes' authorizer.Attributes, resource requests only)."""

    verb: str
    group: str
    resource: str
    subresource: str
    namespace: str
    name: str


@dataclass(frozen=True)
class Identity:
    namespace: str
    name: str

    @property
    def user(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.name}"

    @property
    def groups(self) -> tuple[str, ...]:
        return ("system:serviceaccounts", f"system:serviceaccounts:{self.namespace}", "system:authenticated")


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def forbidden(who: Identity, a: Attributes) -> ApiError:
    """Kubernetes' 403: `pods "x" is forbidden: User "..." cannot get resource "pods/exec" in API group ""
    in the namespace "ns"`."""
    qualified = f"{a.resource}.{a.group}" if a.group else a.resource
    subject = f'{qualified} "{a.name}"' if a.name else qualified
    resource = f"{a.resource}/{a.subresource}" if a.subresource else a.resource
    scope = f'in the namespace "{a.namespace}"' if a.namespace else "at the cluster scope"
    message = (
        f'{subject} is forbidden: User "{who.user}" cannot {a.verb} resource "{resource}" '
        f'in API group "{a.group}" {scope}'
    )
    details: dict[str, Any] = {"kind": a.resource}
    if a.name:
        details["name"] = a.name
    if a.group:
        details["group"] = a.group
    return ApiError(403, "Forbidden", message, details)


def _basic_user(a: Attributes) -> bool:
    """What Kubernetes' system:basic-user ClusterRole grants every authenticated identity."""
    return (
        a.group == "authorization.k8s.io"
        and a.resource in ("selfsubjectaccessreviews", "selfsubjectrulesreviews")
        and a.verb == "create"
    )


def _rule_allows(rule: dict, a: Attributes) -> bool:
    groups = rule.get("apiGroups") or []
    if "*" not in groups and a.group not in groups:
        return False
    verbs = rule.get("verbs") or []
    if "*" not in verbs and a.verb not in verbs:
        return False
    combined = f"{a.resource}/{a.subresource}" if a.subresource else a.resource
    ok = False
    for r in rule.get("resources") or []:
        if r == "*" or r == combined or (a.subresource and r == f"*/{a.subresource}"):
            ok = True
            break
    if not ok:
        return False
    names = rule.get("resourceNames") or []
    return not names or a.name in names


class Rbac:
    """Tokens, bindings and the trace for one emulator."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.tokens: dict[str, Identity] = {}
        self.trace: dict[str, list[tuple[str, str, str, str]]] = {}

    # ---- authentication --------------------------------------------------------------------------
    def mint(self, namespace: str, name: str) -> str:
        token = f"sa.{namespace}.{name}.{_secrets.token_hex(16)}"
        self.tokens[token] = Identity(namespace, name)
        return token

    def identify(self, authorization: str | None) -> Identity | str:
        """ADMIN, or the ServiceAccount of a minted token; 401 for anything else."""
        if not authorization:
            return ADMIN
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer":
            raise unauthorized()
        token = token.strip()
        if token == ADMIN_TOKEN:
            return ADMIN
        who = self.tokens.get(token)
        if who is None:
            raise unauthorized()
        return who

    # ---- authorization ---------------------------------------------------------------------------
    def _rules(self, kind: str, namespace: str | None, name: str) -> list[dict]:
        rtype = BY_KEY[
            "rbac.authorization.k8s.io/roles" if kind == "Role" else "rbac.authorization.k8s.io/clusterroles"
        ]
        obj = self.store.get(rtype, namespace if kind == "Role" else None, name)
        return list((obj or {}).get("rules") or [])

    @staticmethod
    def _binds(binding: dict, who: Identity) -> bool:
        for s in binding.get("subjects") or []:
            kind = s.get("kind")
            if (
                kind == "ServiceAccount"
                and s.get("name") == who.name
                and s.get("namespace", "") == who.namespace
            ):
                return True
            if kind == "User" and s.get("name") == who.user:
                return True
            if kind == "Group" and s.get("name") in who.groups:
                return True
        return False

    def allowed(self, who: Identity | str, a: Attributes) -> bool:
        if who == ADMIN or _basic_user(a):
            return True
        assert isinstance(who, Identity)
        crb = BY_KEY["rbac.authorization.k8s.io/clusterrolebindings"]
        for entry in self.store.iter(crb):
            b = entry.obj
            if self._binds(b, who) and b.get("roleRef", {}).get("kind") == "ClusterRole":
                if any(_rule_allows(r, a) for r in self._rules("ClusterRole", None, b["roleRef"]["name"])):
                    return True
        if a.namespace:
            rb = BY_KEY["rbac.authorization.k8s.io/rolebindings"]
            for entry in self.store.iter(rb, a.namespace):
                b = entry.obj
                if not self._binds(b, who):
                    continue
                ref = b.get("roleRef") or {}
                rules = self._rules(ref.get("kind", ""), a.namespace, ref.get("name", ""))
                if any(_rule_allows(r, a) for r in rules):
                    return True
        return False

    def authorize(self, who: Identity | str, wanted: list[Attributes]) -> None:
        """Record and check every attribute set of one request; 403 at the first denied one."""
        if who == ADMIN:
            return
        assert isinstance(who, Identity)
        if all(_basic_user(a) for a in wanted):
            return  # system:basic-user (every authenticated identity): not the Role's business
        seen = self.trace.setdefault(who.user, [])
        for a in wanted:
            seen.append((a.verb, f"{a.resource}.{a.group}" if a.group else a.resource, a.subresource, a.name))
        for a in wanted:
            if not self.allowed(who, a):
                raise forbidden(who, a)

    def trace_json(self) -> dict[str, list[list[str]]]:
        return {user: [list(t) for t in calls] for user, calls in self.trace.items()}

    # ---- SelfSubjectAccessReview ---------------------------------------------------------------
    def access_review(self, who: Identity | str, body: dict) -> dict:
        spec = body.get("spec") or {}
        ra = spec.get("resourceAttributes")
        if ra is not None:
            a = Attributes(
                ra.get("verb", ""),
                ra.get("group", ""),
                ra.get("resource", ""),
                ra.get("subresource", ""),
                ra.get("namespace", ""),
                ra.get("name", ""),
            )
            ok = self.allowed(who, a)
        else:  # non-resource URLs: discovery is open to every authenticated identity
            ok = True
        status: dict[str, Any] = {"allowed": ok}
        if ok and who != ADMIN:
            status["reason"] = "RBAC: allowed by a (Cluster)RoleBinding"
        return {
            "kind": "SelfSubjectAccessReview",
            "apiVersion": "authorization.k8s.io/v1",
            "metadata": {"creationTimestamp": None},
            "spec": spec,
            "status": status,
        }
