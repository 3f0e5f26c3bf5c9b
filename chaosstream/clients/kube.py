"""Every Kubernetes call chaosstream makes: one facade, one request timeout, one error translation.

`Cluster(secrets, timeout)` wraps the `kubernetes` client's typed APIs. Each call through `cluster.core`,
`cluster.apps`, `cluster.networking`, `cluster.coordination` or `cluster.auth` gets a bounded
`_request_timeout`, no hidden urllib3 retries (a cluster that accepts connections and never answers fails
the call within the timeout), and turns the client's errors — `ApiException`, urllib3/socket/TLS errors —
into `KubeError`, one readable sentence that still carries the HTTP status. Programming errors
(`TypeError`, `AttributeError`, …) are not translated: they are bugs, never "cannot reach the cluster".

Client lookup follows chaosk8s (kubeconfig from KUBECONFIG or ~/.kube/config with KUBERNETES_CONTEXT,
in-cluster with CHAOSTOOLKIT_IN_POD=true, else KUBERNETES_HOST), with two differences that matter for
safety: KUBECONFIG is read at call time (kubernetes.config reads it at import, which breaks sandboxes and
tests), and TLS stays verified unless the kubeconfig or KUBERNETES_VERIFY_SSL=false says otherwise.
"""

import os
import ssl
import threading
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from chaoslib.exceptions import ActivityFailed

__all__ = [
    "Cluster",
    "KubeError",
    "kube_secrets",
    "kube_env",
    "context_of",
    "DEFAULT_TIMEOUT",
    "check_namespace",
    "pod_alive",
    "pod_running",
    "pod_ready",
]

DEFAULT_TIMEOUT = 15.0
_CACHE: Dict[Tuple[Any, ...], Any] = {}
_CACHE_LOCK = threading.Lock()


class KubeError(ActivityFailed):
    """A Kubernetes call failed; `status` is the HTTP status when the API answered (else None)."""

    def __init__(self, message: str, status: Optional[int] = None, body: str = "") -> None:
        super().__init__(message[:1].upper() + message[1:])
        self.status = status
        self.body = body


# -- pod predicates (one place) ------------------------------------------------------------------------------
def pod_alive(pod: Any) -> bool:
    """Not being deleted."""
    return pod.metadata.deletion_timestamp is None


def pod_running(pod: Any) -> bool:
    """Alive and in phase Running."""
    return pod_alive(pod) and bool(pod.status) and pod.status.phase == "Running"


def pod_ready(pod: Any) -> bool:
    """Running with condition Ready=True."""
    if not pod_running(pod):
        return False
    return any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))


def check_namespace(namespace: Any, allowed: str) -> str:
    """Blast radius: actions only touch the configured StreamSpace namespace."""
    if namespace is not None and not isinstance(namespace, str):
        raise ActivityFailed(f"Argument 'namespace' must be a namespace name, not {namespace!r}.")
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


# -- error translation (the only place) ------------------------------------------------------------------------
def _status_message(body: str) -> str:
    """The `message` of a Kubernetes Status body (admission errors, RBAC denials), if there is one."""
    import json

    try:
        data = json.loads(body or "")
    except ValueError:
        return ""
    return str(data.get("message") or "") if isinstance(data, dict) else ""


def _is_status_body(body: str) -> bool:
    import json

    try:
        data = json.loads(body or "")
    except ValueError:
        return False
    return isinstance(data, dict) and data.get("kind") == "Status"


def translate(exc: BaseException, what: str) -> KubeError:
    """Turn a kubernetes ApiException or a transport error into one readable sentence."""
    status = getattr(exc, "status", None)
    body = getattr(exc, "body", "") or ""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    reason = str(getattr(exc, "reason", "") or "")
    if not status and reason.startswith("Handshake status "):
        # A refused WebSocket upgrade (exec): "Handshake status 400 Bad Request -+-+- {headers} -+-+- {body}"
        head, _, rest = reason.partition(" -+-+- ")
        try:
            status = int(head.split()[2])
        except (IndexError, ValueError):
            status = None
        body = rest.rpartition(" -+-+- ")[2] if rest else ""
        reason = " ".join(head.split()[3:])
    said = _status_message(body)
    if status and not 400 <= int(status) <= 599:
        # Not an API answer (e.g. a read cut short by a signal after a 200): a transport failure, retryable.
        status = None
    if status and not _is_status_body(body):
        # A real API server answers errors with a Status object; anything else is another server
        # (KUBECONFIG pointing at the StreamSpace API, a proxy, a login page).
        return KubeError(
            f"The server in KUBECONFIG answered {status} to {what} without a Kubernetes Status body: check that "
            "KUBECONFIG (and KUBERNETES_CONTEXT) point at a Kubernetes API server.",
            int(status),
            body,
        )
    if status == 404:
        return KubeError(
            f"{what} was not found in Kubernetes (404): check the name and namespace.", 404, body
        )
    if status == 401:
        return KubeError(
            f"Kubernetes did not accept the credentials for {what} (401): check the kubeconfig user or the "
            "service account token.",
            401,
            body,
        )
    if status == 403:
        detail = f": {said}" if said else ""
        if "PodSecurity" in said or "admission webhook" in said or "denied the request" in said:
            return KubeError(
                f"Kubernetes admission refused {what}{detail}; use a method the namespace's policy allows.",
                403,
                body,
            )
        return KubeError(
            f"Kubernetes refused {what} (403{detail}): grant the missing verb to the service account or "
            "kubeconfig user (deploy/kubernetes/rbac.yaml lists what chaosstream needs).",
            403,
            body,
        )
    if status == 409:
        return KubeError(
            f"Kubernetes reported a conflict on {what} (409): it was changed concurrently; retry.", 409, body
        )
    if status == 422:
        detail = f": {said}" if said else ""
        return KubeError(f"Kubernetes rejected {what} as invalid (422{detail}).", 422, body)
    if status:
        detail = f": {said}" if said else ""
        return KubeError(f"Kubernetes answered {status} {reason} for {what}{detail}.", int(status), body)
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if "timed out" in text.lower() or "timeout" in type(exc).__name__.lower():
        return KubeError(
            f"The Kubernetes API did not answer in time for {what}: check that the cluster in KUBECONFIG is up "
            "and not overloaded."
        )
    return KubeError(
        f"Cannot reach the Kubernetes API for {what} ({text[:200]}): check KUBECONFIG and the cluster."
    )


def _transport_errors() -> Tuple[type, ...]:
    import urllib3
    from kubernetes.client.exceptions import ApiException, ApiValueError

    return (ApiException, ApiValueError, urllib3.exceptions.HTTPError, OSError, ssl.SSLError, TimeoutError)


def _shape_errors() -> Tuple[type, ...]:
    """What the client raises when a 2xx answer is not a Kubernetes object (pydantic models, client ≥ 35)."""
    try:
        from pydantic import ValidationError
    except ImportError:  # older clients: no model validation
        return ()
    return (ValidationError,)


_KINDS = {
    "pod": "pod",
    "deployment": "Deployment",
    "network policy": "NetworkPolicy",
    "config map": "ConfigMap",
    "persistent volume claim": "PersistentVolumeClaim",
    "lease": "Lease",
    "pod ephemeralcontainers": "ephemeral containers of pod",
    "deployment scale": "scale of Deployment",
    "self subject access review": "SelfSubjectAccessReview",
}


def _describe(method: str, args: Tuple[Any, ...], kwargs: Mapping[str, Any]) -> str:
    """`read_namespaced_pod('a', 'ns')` → "pod ns/a" — the object a call is about, for messages."""
    words = method.split("_")
    verb = words[0]
    rest = words[1:]
    if rest and rest[0] == "collection":
        rest = rest[1:]
    namespaced = bool(rest) and rest[0] == "namespaced"
    kind = " ".join(rest[1:] if namespaced else rest) or method
    kind = _KINDS.get(kind, kind)
    if verb in ("list", "create") or verb == "delete" and "collection" in method:
        ns = args[0] if namespaced and args else kwargs.get("namespace", "")
        selector = kwargs.get("label_selector")
        where = f" in {ns}" if ns else ""
        return f"{kind} ({verb}{', ' + repr(selector) if selector else ''}){where}"
    name = args[0] if args else kwargs.get("name", "")
    ns = args[1] if namespaced and len(args) > 1 else kwargs.get("namespace", "")
    return f"{kind} {ns + '/' if ns else ''}{name} ({verb})"


class _Api:
    """A typed kubernetes API whose every method is bounded and translated."""

    def __init__(self, api: Any, timeout: float) -> None:
        self._api = api
        self._timeout = timeout

    def __getattr__(self, method: str) -> Callable[..., Any]:
        target = getattr(self._api, method)
        errors = _transport_errors()
        shapes = _shape_errors()

        def call(*args: Any, **kwargs: Any) -> Any:
            kwargs.setdefault("_request_timeout", (min(self._timeout, 10.0), self._timeout))
            try:
                return target(*args, **kwargs)
            except errors as exc:
                raise translate(exc, _describe(method, args, kwargs)) from None
            except shapes:
                raise KubeError(
                    f"The server in KUBECONFIG answered {_describe(method, args, kwargs)} with something that is not "
                    "a Kubernetes object: check that KUBECONFIG (and KUBERNETES_CONTEXT) point at a Kubernetes API "
                    "server."
                ) from None

        return call


class Cluster:
    """The Kubernetes API as chaosstream uses it: `cluster.core.list_namespaced_pod(ns, ...)` etc.

    `timeout` bounds every request (connect and read); `KubeError` carries one sentence and the status.
    """

    def __init__(self, secrets: Optional[Mapping[str, Any]] = None, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.secrets = secrets
        self.timeout = float(timeout)
        self.client = api_client(secrets)

    @property
    def context(self) -> str:
        """The kube context every call of this cluster goes to (for outputs and messages)."""
        return context_of(self.secrets)

    def _typed(self, name: str) -> _Api:
        from kubernetes import client

        return _Api(getattr(client, name)(self.client), self.timeout)

    @property
    def core(self) -> _Api:
        return self._typed("CoreV1Api")

    @property
    def apps(self) -> _Api:
        return self._typed("AppsV1Api")

    @property
    def networking(self) -> _Api:
        return self._typed("NetworkingV1Api")

    @property
    def discovery(self) -> _Api:
        return self._typed("DiscoveryV1Api")

    @property
    def coordination(self) -> _Api:
        return self._typed("CoordinationV1Api")

    @property
    def batch(self) -> _Api:
        return self._typed("BatchV1Api")

    @property
    def auth(self) -> _Api:
        return self._typed("AuthorizationV1Api")

    @property
    def storage(self) -> _Api:
        return self._typed("StorageV1Api")

    def claims_of(self, namespace: str, pod: Any) -> Dict[str, str]:
        """PVCs a pod mounts: claim name -> PVC uid (a recreated PVC has a new uid: the home is gone)."""
        out: Dict[str, str] = {}
        for volume in pod.spec.volumes or []:
            if volume.persistent_volume_claim is None:
                continue
            name = volume.persistent_volume_claim.claim_name
            try:
                out[name] = self.core.read_namespaced_persistent_volume_claim(name, namespace).metadata.uid
            except KubeError as exc:
                if exc.status != 404:
                    raise
                out[name] = "missing"
        return out

    def exec(
        self, namespace: str, pod: str, container: str, command: List[str], timeout: Optional[float] = None
    ) -> Tuple[int, str, str]:
        """Run a command in a container through pods/exec; returns (exit code, stdout, stderr).

        The whole exchange (handshake, command, output) is bounded by `timeout` (default: the cluster's)."""
        import websocket
        from kubernetes import client
        from kubernetes.stream import stream

        limit = float(timeout or self.timeout)
        what = f"exec in pod {namespace}/{pod} container {container}"
        result: Dict[str, Any] = {}

        def run() -> None:
            try:
                resp = stream(
                    client.CoreV1Api(self.client).connect_get_namespaced_pod_exec,
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
                try:
                    resp.run_forever(timeout=limit)
                    result["out"] = (resp.returncode, resp.read_stdout() or "", resp.read_stderr() or "")
                finally:
                    resp.close()
            except Exception as exc:  # translated below, in the caller's thread
                result["error"] = exc

        # websocket-client has no per-call timeout for the handshake; its default one bounds every socket.
        websocket.setdefaulttimeout(limit)
        worker = threading.Thread(target=run, name="chaosstream-exec", daemon=True)
        worker.start()
        worker.join(limit + 0.5)
        if worker.is_alive():
            raise KubeError(
                f"The Kubernetes API did not finish {what} within {limit:g}s: check that the cluster is up."
            )
        error = result.get("error")
        if error is not None:
            if isinstance(error, (TypeError, AttributeError, KeyError, NameError)):
                raise error
            raise translate(error, what) from None
        code, out, err = result["out"]
        return (code if code is not None else -1), out, err


# -- client construction ------------------------------------------------------------------------------------
def _lookup(secrets: Optional[Mapping[str, Any]], key: str, default: Optional[str] = None) -> Optional[str]:
    if secrets and secrets.get(key) not in (None, ""):
        return str(secrets[key])
    return os.environ.get(key, default)


_KUBE_KEYS = (
    "KUBECONFIG",
    "KUBERNETES_CONTEXT",
    "KUBERNETES_HOST",
    "KUBERNETES_API_KEY",
    "KUBERNETES_API_KEY_PREFIX",
    "KUBERNETES_VERIFY_SSL",
    "KUBERNETES_CA_CERT_FILE",
)


def kube_secrets(secrets: Optional[Mapping[str, Any]]) -> Optional[Dict[str, Any]]:
    """The KUBECONFIG / KUBERNETES_* keys of secrets as controls get them (every scope, nested: the
    `kubernetes` scope wins over `streamspace`) or as activities get them (the listed scopes, flat)."""
    if not isinstance(secrets, Mapping):
        return None
    merged: Dict[str, Any] = {k: v for k, v in secrets.items() if k in _KUBE_KEYS}
    for scope in ("streamspace", "kubernetes"):
        if isinstance(secrets.get(scope), Mapping):
            merged.update({k: v for k, v in secrets[scope].items() if k in _KUBE_KEYS})
    return merged or None


def kube_env(secrets: Optional[Mapping[str, Any]]) -> Dict[str, str]:
    """The environment a helper process needs to reach the same cluster (the dead-man reaper): the
    activity's own kubeconfig and context, so it never falls back to the runner's default context."""
    return {k: str(v) for k, v in (kube_secrets(secrets) or {}).items() if v not in (None, "")}


def context_of(secrets: Optional[Mapping[str, Any]] = None) -> str:
    """The kube context calls go to: KUBERNETES_CONTEXT (secrets, then env), else the kubeconfig's
    current context, else `in-cluster` / `KUBERNETES_HOST`."""
    explicit = _lookup(secrets, "KUBERNETES_CONTEXT")
    if explicit:
        return explicit
    kubeconfig = (_lookup(secrets, "KUBECONFIG") or os.path.expanduser("~/.kube/config")).split(os.pathsep)[0]
    if os.path.exists(kubeconfig):
        try:
            import yaml

            with open(kubeconfig, encoding="utf-8") as fh:
                current = (yaml.safe_load(fh) or {}).get("current-context")
            return str(current or "(no current context)")
        except (OSError, ValueError, AttributeError):
            return "(unreadable kubeconfig)"
    if os.environ.get("CHAOSTOOLKIT_IN_POD") == "true":
        return "in-cluster"
    return _lookup(secrets, "KUBERNETES_HOST", "https://localhost") or ""


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
        cfg = client.Configuration()
        try:
            if key[0] == "file":
                config.load_kube_config(
                    config_file=kubeconfig, context=context, client_configuration=cfg, persist_config=False
                )
            elif key[0] == "incluster":
                config.load_incluster_config(client_configuration=cfg)
            else:
                cfg.host = key[1]
                verify = (_lookup(secrets, "KUBERNETES_VERIFY_SSL", "true") or "").lower()
                cfg.verify_ssl = verify not in ("false", "0", "no")
                cfg.ssl_ca_cert = _lookup(secrets, "KUBERNETES_CA_CERT_FILE")
                if key[2]:
                    cfg.api_key["authorization"] = key[2]
                    cfg.api_key_prefix["authorization"] = _lookup(
                        secrets, "KUBERNETES_API_KEY_PREFIX", "Bearer"
                    )
        except Exception as exc:  # config errors come in many types (ConfigException, OSError, YAML errors)
            raise ActivityFailed(
                f"Cannot build a Kubernetes client from {key[0]} configuration ({str(exc)[:200]}): check "
                "KUBECONFIG, KUBERNETES_CONTEXT or CHAOSTOOLKIT_IN_POD."
            ) from None
        # No hidden retries: a hung cluster must fail the call within its timeout, and our waits poll anyway.
        cfg.retries = False
        api = client.ApiClient(cfg)
        _CACHE[key] = api
        return api
