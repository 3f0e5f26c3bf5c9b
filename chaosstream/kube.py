"""Kubernetes client creation and small helpers shared by the actions and probes.

Client lookup follows chaosk8s (kubeconfig from KUBECONFIG or ~/.kube/config with KUBERNETES_CONTEXT,
in-cluster with CHAOSTOOLKIT_IN_POD=true, else KUBERNETES_HOST) with two differences that matter for
safety: KUBECONFIG is read at call time (kubernetes.config reads it at import, which breaks sandboxes and
tests), and TLS stays verified unless the kubeconfig or KUBERNETES_VERIFY_SSL=false says otherwise.
"""

import os
import threading
from typing import Any, Dict, Mapping, Optional, Tuple

from chaoslib.exceptions import ActivityFailed

__all__ = [
    "api_client",
    "apps_api",
    "core_api",
    "networking_api",
    "k8s_error",
    "check_namespace",
    "exec_in_pod",
]

_CACHE: Dict[Tuple[Any, ...], Any] = {}
_CACHE_LOCK = threading.Lock()


def _lookup(secrets: Optional[Mapping[str, Any]], key: str, default: Optional[str] = None) -> Optional[str]:
    if secrets and secrets.get(key) not in (None, ""):
        return str(secrets[key])
    return os.environ.get(key, default)


def api_client(secrets: Optional[Mapping[str, Any]] = None) -> Any:
    """A `kubernetes.client.ApiClient`, cached per source so polling does not re-read files."""
    from kubernetes import client, config

    explicit = _lookup(secrets, "KUBECONFIG")
    kubeconfig = explicit or os.path.expanduser("~/.kube/config")
    if explicit and not all(os.path.exists(p) for p in explicit.split(os.pathsep) if p):
        raise ActivityFailed(
            f"KUBECONFIG names {explicit!r}, which does not exist: fix KUBECONFIG or unset it."
        )
    if explicit and os.pathsep in explicit:
        kubeconfig = explicit.split(os.pathsep)[0]  # the client reads one file; the first wins as in kubectl
    context = _lookup(secrets, "KUBERNETES_CONTEXT")
    if os.path.exists(kubeconfig):
        key: Tuple[Any, ...] = ("file", kubeconfig, os.path.getmtime(kubeconfig), context)
    elif os.environ.get("CHAOSTOOLKIT_IN_POD") == "true":
        key = ("incluster",)
    else:
        key = (
            "env",
            _lookup(secrets, "KUBERNETES_HOST", "https://localhost"),
            _lookup(secrets, "KUBERNETES_API_KEY"),
        )
    with _CACHE_LOCK:
        if key in _CACHE:
            return _CACHE[key]
        try:
            if key[0] == "file":
                api = config.new_client_from_config(config_file=kubeconfig, context=context)
            elif key[0] == "incluster":
                cfg = client.Configuration()
                config.load_incluster_config(client_configuration=cfg)
                api = client.ApiClient(cfg)
            else:
                cfg = client.Configuration()
                cfg.host = key[1]
                cfg.verify_ssl = (_lookup(secrets, "KUBERNETES_VERIFY_SSL", "true") or "").lower() not in (
                    "false",
                    "0",
                    "no",
                )
                cfg.ssl_ca_cert = _lookup(secrets, "KUBERNETES_CA_CERT_FILE")
                if key[2]:
                    cfg.api_key["authorization"] = key[2]
                    cfg.api_key_prefix["authorization"] = _lookup(
                        secrets, "KUBERNETES_API_KEY_PREFIX", "Bearer"
                    )
                api = client.ApiClient(cfg)
        except Exception as exc:  # config errors come in many types (ConfigException, OSError, YAML errors)
            raise ActivityFailed(
                f"Cannot build a Kubernetes client from {key[0]} configuration ({exc}): check KUBECONFIG, "
                "KUBERNETES_CONTEXT or CHAOSTOOLKIT_IN_POD."
            ) from None
        _CACHE[key] = api
        return api


def core_api(secrets: Optional[Mapping[str, Any]] = None) -> Any:
    from kubernetes import client

    return client.CoreV1Api(api_client(secrets))


def apps_api(secrets: Optional[Mapping[str, Any]] = None) -> Any:
    from kubernetes import client

    return client.AppsV1Api(api_client(secrets))


def networking_api(secrets: Optional[Mapping[str, Any]] = None) -> Any:
    from kubernetes import client

    return client.NetworkingV1Api(api_client(secrets))


def k8s_error(exc: BaseException, what: str) -> ActivityFailed:
    """Turn a kubernetes ApiException / urllib3 error into one readable sentence."""
    status = getattr(exc, "status", None)
    if status == 404:
        return ActivityFailed(f"{what} was not found in Kubernetes (404): check the name and namespace.")
    if status in (401, 403):
        return ActivityFailed(
            f"Kubernetes refused access to {what} ({status}): the service account or kubeconfig user lacks the "
            "RBAC verbs listed in deploy/kubernetes/rbac.yaml."
        )
    if status == 409:
        return ActivityFailed(
            f"Kubernetes reported a conflict on {what} (409): it was changed concurrently; retry."
        )
    if status:
        reason = getattr(exc, "reason", "") or ""
        return ActivityFailed(f"Kubernetes answered {status} {reason} for {what}.")
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return ActivityFailed(
        f"Cannot reach the Kubernetes API for {what} ({text}): check KUBECONFIG and the cluster."
    )


def check_namespace(namespace: str, allowed: str) -> str:
    """Blast radius: actions only touch the configured StreamSpace namespace."""
    ns = (namespace or allowed or "").strip()
    if not ns:
        raise ActivityFailed(
            "No namespace given: pass 'namespace' or set 'streamspace_namespace' (STREAMSPACE_NAMESPACE)."
        )
    if ns != allowed:
        raise ActivityFailed(
            f"Namespace {ns!r} is outside the allowed blast radius {allowed!r}: change the 'namespace' argument "
            "or 'streamspace_namespace' in the configuration."
        )
    return ns


def exec_in_pod(
    secrets: Optional[Mapping[str, Any]],
    namespace: str,
    pod: str,
    container: str,
    command: list,
    timeout: float = 30.0,
) -> Tuple[int, str, str]:
    """Run a command in a container through pods/exec; returns (exit code, stdout, stderr)."""
    from kubernetes.stream import stream

    try:
        resp = stream(
            core_api(secrets).connect_get_namespaced_pod_exec,
            pod,
            namespace,
            container=container,
            command=command,
            stderr=True,
            stdin=False,
            stdout=True,
            tty=False,
            _preload_content=False,
        )
    except Exception as exc:
        raise k8s_error(exc, f"exec in {namespace}/{pod} container {container}") from None
    try:
        resp.run_forever(timeout=timeout)
        out, err = resp.read_stdout() or "", resp.read_stderr() or ""
        code = resp.returncode
    finally:
        resp.close()
    return (code if code is not None else -1), out, err
