"""Session workloads on Kubernetes, built like ``agents/k8s-agent/agent_k8s_operations.go`` builds them.

Every function here is blocking (the ``kubernetes`` client is synchronous); the handlers call them through
a thread executor so the heartbeat keeps flowing while a command runs. ``kubernetes`` is imported lazily
because ``kubernetes.config`` reads KUBECONFIG at import time.
"""

import dataclasses
import json
import logging
from typing import Any, Dict, List, Optional, Tuple

log = logging.getLogger(__name__)

SESSION_GROUP = "stream.space"
SESSION_VERSION = "v1alpha1"
VNC_PORT = 3000
PVC_STORAGE_CLASS = "standard"  # hard-coded in the real agent
PVC_SIZE = "10Gi"
DEFAULT_MEMORY = "2Gi"
DEFAULT_CPU = "1000m"


class WorkloadError(RuntimeError):
    """A Kubernetes operation failed; the message reads like client-go's error string."""


@dataclasses.dataclass(frozen=True)
class SessionSpec:
    """The parts of a ``start_session`` payload the workload needs."""

    session_id: str
    user: str
    template: str
    persistent_home: bool = False
    memory: str = ""
    cpu: str = ""


@dataclasses.dataclass(frozen=True)
class Template:
    """The parts of a Template CR (``templateManifest``) the workload needs."""

    name: str
    base_image: str
    default_memory: str = ""
    default_cpu: str = ""
    ports: Tuple[Dict[str, Any], ...] = ()
    env: Tuple[Dict[str, str], ...] = ()
    vnc_enabled: bool = False
    vnc_port: int = 0


def parse_template(manifest: Any) -> Template:
    """Read a Template CR object; a missing ``spec`` or ``spec.baseImage`` is an error, as in the real agent."""
    if not isinstance(manifest, dict):
        raise WorkloadError(f"templateManifest has invalid type: {type(manifest).__name__}")
    spec = manifest.get("spec")
    if not isinstance(spec, dict):
        raise WorkloadError("failed to parse template manifest: invalid template spec")
    base_image = spec.get("baseImage")
    if not isinstance(base_image, str):
        raise WorkloadError("failed to parse template manifest: template missing baseImage")
    resources = spec.get("defaultResources") if isinstance(spec.get("defaultResources"), dict) else {}
    ports = []
    for port in spec.get("ports") or []:
        if not isinstance(port, dict):
            continue
        protocol = "UDP" if port.get("protocol") == "UDP" else "TCP"
        entry: Dict[str, Any] = {"containerPort": int(port.get("containerPort") or 0), "protocol": protocol}
        if port.get("name"):
            entry["name"] = str(port["name"])
        ports.append(entry)
    env = tuple(
        {"name": str(item.get("name", "")), "value": str(item.get("value", ""))}
        for item in spec.get("env") or []
        if isinstance(item, dict)
    )
    vnc = spec.get("vnc") if isinstance(spec.get("vnc"), dict) else {}
    return Template(
        name=str((manifest.get("metadata") or {}).get("name", "")),
        base_image=base_image,
        default_memory=str(resources.get("memory") or ""),
        default_cpu=str(resources.get("cpu") or ""),
        ports=tuple(ports),
        env=env,
        vnc_enabled=bool(vnc.get("enabled", False)),
        vnc_port=int(vnc.get("port") or 0),
    )


def session_labels(spec: SessionSpec) -> Dict[str, str]:
    """Labels the real agent puts on every session object."""
    return {
        "app": "streamspace-session",
        "session": spec.session_id,
        "user": spec.user,
        "template": spec.template,
    }


def deployment_body(namespace: str, spec: SessionSpec, template: Template) -> Dict[str, Any]:
    """The session Deployment: one replica, container ``session``, requests = limits."""
    memory = spec.memory or template.default_memory or DEFAULT_MEMORY
    cpu = spec.cpu or template.default_cpu or DEFAULT_CPU
    if template.ports:
        ports: List[Dict[str, Any]] = [dict(port) for port in template.ports]
    elif template.vnc_enabled:
        ports = [{"name": "vnc", "containerPort": template.vnc_port, "protocol": "TCP"}]
    else:
        ports = [{"name": "vnc", "containerPort": VNC_PORT, "protocol": "TCP"}]
    # Session variables override template variables of the same name.
    env: Dict[str, str] = {item["name"]: item["value"] for item in template.env}
    env.update(
        {"USER": spec.user, "SESSION_ID": spec.session_id, "PUID": "1000", "PGID": "1000", "TZ": "UTC"}
    )
    container: Dict[str, Any] = {
        "name": "session",
        "image": template.base_image,
        "ports": ports,
        "env": [{"name": name, "value": value} for name, value in env.items()],
        "resources": {"limits": {"memory": memory, "cpu": cpu}, "requests": {"memory": memory, "cpu": cpu}},
    }
    pod_spec: Dict[str, Any] = {"containers": [container]}
    if spec.persistent_home:
        pod_spec["volumes"] = [
            {"name": "user-home", "persistentVolumeClaim": {"claimName": pvc_name(spec.session_id)}}
        ]
        container["volumeMounts"] = [{"name": "user-home", "mountPath": "/config"}]
    labels = session_labels(spec)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": spec.session_id, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"session": spec.session_id}},
            "template": {"metadata": {"labels": dict(labels)}, "spec": pod_spec},
        },
    }


def service_body(namespace: str, spec: SessionSpec) -> Dict[str, Any]:
    """ClusterIP Service ``vnc`` 3000→3000 selecting the session pod."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": spec.session_id, "namespace": namespace, "labels": session_labels(spec)},
        "spec": {
            "type": "ClusterIP",
            "selector": {"session": spec.session_id},
            "ports": [{"name": "vnc", "port": VNC_PORT, "targetPort": VNC_PORT, "protocol": "TCP"}],
        },
    }


def pvc_name(session_id: str) -> str:
    return f"{session_id}-home"


def pvc_body(namespace: str, spec: SessionSpec) -> Dict[str, Any]:
    """RWO 10Gi PVC on storage class ``standard`` (hard-coded in the real agent)."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": pvc_name(spec.session_id),
            "namespace": namespace,
            "labels": session_labels(spec),
        },
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": PVC_STORAGE_CLASS,
            "resources": {"requests": {"storage": PVC_SIZE}},
        },
    }


def session_cr_body(namespace: str, spec: SessionSpec, pod_name: str, pod_ip: str) -> Dict[str, Any]:
    """The informational Session CR; its ``status`` is probably dropped by the status subresource."""
    cr_spec: Dict[str, Any] = {
        "user": spec.user,
        "template": spec.template,
        "state": "running",
        "persistentHome": spec.persistent_home,
    }
    resources = {key: value for key, value in (("memory", spec.memory), ("cpu", spec.cpu)) if value}
    if resources:
        cr_spec["resources"] = resources
    return {
        "apiVersion": f"{SESSION_GROUP}/{SESSION_VERSION}",
        "kind": "Session",
        "metadata": {"name": spec.session_id, "namespace": namespace, "labels": session_labels(spec)},
        "spec": cr_spec,
        "status": {"phase": "Running", "podName": pod_name, "url": f"http://{pod_ip}:{VNC_PORT}"},
    }


def _error_text(exc: Exception) -> str:
    """client-go style text: the API Status ``message`` when there is one (e.g. ``… already exists``)."""
    body = getattr(exc, "body", None)
    if body:
        try:
            message = json.loads(body).get("message")
        except (ValueError, AttributeError):
            message = None
        if message:
            return str(message)
    status, reason = getattr(exc, "status", None), getattr(exc, "reason", None)
    if status:
        return f"{status} {reason or ''}".strip()
    return str(exc) or type(exc).__name__


class Workloads:
    """Blocking Kubernetes operations for session workloads."""

    def __init__(self, kubeconfig: str) -> None:
        """Build the API clients from ``kubeconfig`` (empty → in-cluster), like the real agent at start."""
        import kubernetes  # lazy: kubernetes.config reads KUBECONFIG at import time

        if kubeconfig:
            api_client = kubernetes.config.new_client_from_config(config_file=kubeconfig)
        else:
            kubernetes.config.load_incluster_config()
            api_client = kubernetes.client.ApiClient()
        self._client = kubernetes.client
        self._configuration = api_client.configuration
        self.apps = kubernetes.client.AppsV1Api(api_client)
        self.core = kubernetes.client.CoreV1Api(api_client)
        self.custom = kubernetes.client.CustomObjectsApi(api_client)

    def _call(self, what: str, func: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except Exception as exc:  # ApiException, urllib3 errors: all become one readable error
            raise WorkloadError(f"{what}: {_error_text(exc)}" if what else _error_text(exc)) from exc

    def fetch_template(self, namespace: str, name: str) -> Dict[str, Any]:
        """Fallback when the payload has no templateManifest: read the Template CR."""
        return self._call(
            f"failed to get template {name}",
            self.custom.get_namespaced_custom_object,
            SESSION_GROUP,
            SESSION_VERSION,
            namespace,
            "templates",
            name,
        )

    def create_deployment(self, body: Dict[str, Any]) -> str:
        namespace = body["metadata"]["namespace"]
        created = self._call("", self.apps.create_namespaced_deployment, namespace, body)
        return created.metadata.name

    def create_service(self, body: Dict[str, Any]) -> str:
        namespace = body["metadata"]["namespace"]
        created = self._call("", self.core.create_namespaced_service, namespace, body)
        return created.metadata.name

    def create_pvc(self, body: Dict[str, Any]) -> str:
        namespace = body["metadata"]["namespace"]
        created = self._call("", self.core.create_namespaced_persistent_volume_claim, namespace, body)
        return created.metadata.name

    def create_session_cr(self, body: Dict[str, Any]) -> None:
        namespace = body["metadata"]["namespace"]
        self._call(
            "failed to create Session CRD",
            self.custom.create_namespaced_custom_object,
            SESSION_GROUP,
            SESSION_VERSION,
            namespace,
            "sessions",
            body,
        )

    def ready_pod(self, namespace: str, session_id: str) -> Optional[Tuple[str, str]]:
        """One poll: (name, IP) of the first pod labelled ``session=<id>`` if it is Running and Ready."""
        pods = self._call(
            "", self.core.list_namespaced_pod, namespace, label_selector=f"session={session_id}"
        )
        if not pods.items:
            return None
        pod = pods.items[0]  # the real agent only looks at the first pod
        status = pod.status
        if status is None or status.phase != "Running":
            return None
        for condition in status.conditions or []:
            if condition.type == "Ready" and condition.status == "True":
                return pod.metadata.name, status.pod_ip or ""
        return None

    def scale_deployment(self, namespace: str, name: str, replicas: int) -> None:
        """Get + Update, like the real agent (not a scale subresource patch)."""
        deployment = self._call("", self.apps.read_namespaced_deployment, name, namespace)
        deployment.spec.replicas = replicas
        self._call("", self.apps.replace_namespaced_deployment, name, namespace, deployment)

    # Deletes skip response decoding: servers answer with the object or a Status, and only the HTTP
    # status matters here (non-2xx still raises).
    def delete_deployment(self, namespace: str, name: str) -> None:
        options = self._client.V1DeleteOptions(propagation_policy="Foreground")
        self._call(
            "", self.apps.delete_namespaced_deployment, name, namespace, body=options, _preload_content=False
        )

    def delete_service(self, namespace: str, name: str) -> None:
        self._call("", self.core.delete_namespaced_service, name, namespace, _preload_content=False)

    def delete_pvc(self, namespace: str, session_id: str) -> None:
        self._call(
            "",
            self.core.delete_namespaced_persistent_volume_claim,
            pvc_name(session_id),
            namespace,
            _preload_content=False,
        )
