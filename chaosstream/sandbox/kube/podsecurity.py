"""Pod Security Admission as the kube-apiserver enforces it (`pod-security.kubernetes.io/enforce` on the
namespace): pods and ephemeral-container updates that violate the level are refused with Kubernetes' own
message, e.g. `pods "p" is forbidden: violates PodSecurity "baseline:latest": non-default capabilities
(container "c" must not include "NET_ADMIN" in securityContext.capabilities.add)`.

Only the checks our faults can trip are modelled: privileged, capabilities, allowPrivilegeEscalation,
runAsNonRoot and seccompProfile.
"""

from typing import Any, Dict, List, Optional

from .errors import ApiError

__all__ = ["ENFORCE_LABEL", "check_pod"]

ENFORCE_LABEL = "pod-security.kubernetes.io/enforce"
BASELINE_CAPS = {
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
    "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
}  # fmt: skip
Obj = Dict[str, Any]


def _containers(spec: Obj) -> List[Obj]:
    return (
        list(spec.get("initContainers") or [])
        + list(spec.get("containers") or [])
        + list(spec.get("ephemeralContainers") or [])
    )


_SECCOMP_OK = ("RuntimeDefault", "Localhost")


def _quoted(names: List[str]) -> str:
    return ", ".join(f'"{n}"' for n in names)


def _must(names: List[str], text: str) -> str:
    noun = "container" if len(names) == 1 else "containers"
    verb = "must" if len(names) == 1 else "must"
    return f"{noun} {_quoted(names)} {verb} {text}"


def _failing(containers: List[Obj], ok: Any) -> List[str]:
    """The names of the containers whose securityContext does not pass `ok`."""
    return [c["name"] for c in containers if not ok(c.get("securityContext") or {})]


def _report(
    out: List[str], names: List[str], check: str, fix: str, pod: bool = False, tail: str = ""
) -> None:
    """One violation in Kubernetes' wording: `check (pod or container "x" must fix tail)`."""
    if names:
        out.append(f"{check} ({'pod or ' if pod else ''}{_must(names, fix)}{tail})")


def violations(level: str, spec: Obj) -> List[str]:
    """The PodSecurity violations of a pod spec at `level`, in Kubernetes' wording and order."""
    if level not in ("baseline", "restricted"):
        return []
    containers = _containers(spec)
    pod_sc = spec.get("securityContext") or {}
    out: List[str] = []
    if level == "restricted":
        _report(
            out,
            _failing(containers, lambda sc: sc.get("allowPrivilegeEscalation") is False),
            "allowPrivilegeEscalation != false",
            "set securityContext.allowPrivilegeEscalation=false",
        )
    _report(
        out,
        _failing(containers, lambda sc: not sc.get("privileged")),
        "privileged",
        "not set securityContext.privileged=true",
    )
    caps: List[str] = []
    no_drop: List[str] = []
    for c in containers:
        cap = (c.get("securityContext") or {}).get("capabilities") or {}
        allowed = {"NET_BIND_SERVICE"} if level == "restricted" else BASELINE_CAPS
        for add in cap.get("add") or []:
            if add not in allowed:
                caps.append(
                    f'container "{c["name"]}" must not include "{add}" in securityContext.capabilities.add'
                )
        if level == "restricted" and "ALL" not in (cap.get("drop") or []):
            no_drop.append(c["name"])
    if level == "restricted" and (caps or no_drop):
        parts = ([_must(no_drop, 'set securityContext.capabilities.drop=["ALL"]')] if no_drop else []) + caps
        out.append(f"unrestricted capabilities ({'; '.join(parts)})")
    elif caps:
        out.append(f"non-default capabilities ({'; '.join(caps)})")
    if level == "restricted":
        if pod_sc.get("runAsNonRoot") is not True:
            _report(
                out,
                _failing(containers, lambda sc: sc.get("runAsNonRoot") is True),
                "runAsNonRoot != true",
                "set securityContext.runAsNonRoot=true",
                pod=True,
            )
        if (pod_sc.get("seccompProfile") or {}).get("type") not in _SECCOMP_OK:
            _report(
                out,
                _failing(containers, lambda sc: (sc.get("seccompProfile") or {}).get("type") in _SECCOMP_OK),
                "seccompProfile",
                "set securityContext.seccompProfile.type to",
                pod=True,
                tail=' "RuntimeDefault" or "Localhost"',
            )
    return out


def check_pod(namespace_obj: Optional[Obj], name: str, spec: Obj) -> None:
    """Raise the apiserver's 403 when `spec` violates the namespace's enforced level."""
    labels = ((namespace_obj or {}).get("metadata") or {}).get("labels") or {}
    level = labels.get(ENFORCE_LABEL, "privileged")
    found = violations(level, spec)
    if found:
        version = labels.get(ENFORCE_LABEL + "-version", "latest")
        raise ApiError(
            403,
            "Forbidden",
            f'pods "{name}" is forbidden: violates PodSecurity "{level}:{version}": {", ".join(found)}',
        )
