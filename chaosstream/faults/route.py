"""The agent's real route to the control plane, resolved through the Kubernetes API.

The agent dials `CONTROL_PLANE_URL` (the chart: `ws://<release>-api:8000`), not the URL the SRE uses.
Behind that name is a Service: the pod's packets leave for ClusterIP:port (kube-proxy DNATs them on the
node) or, on socket-LB dataplanes, for endpoint:targetPort. A partition must drop both forms, for every
ClusterIP (IPv4 and IPv6) and every ready endpoint address.
"""

import ipaddress
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import urlsplit

from chaoslib.exceptions import ActivityFailed

from chaosstream.clients.kube import Cluster, KubeError

__all__ = [
    "control_plane_url",
    "resolve_route",
    "parse_destinations",
    "kube_api_destinations",
    "SENSITIVE_PORTS",
]

SENSITIVE_PORTS = (443, 6443)
_DEFAULT_PORTS = {"ws": 80, "http": 80, "wss": 443, "https": 443}


def _env_value(containers: List[Any], name: str, preferred: str) -> str:
    ordered = sorted(containers or [], key=lambda c: getattr(c, "name", "") != preferred)
    for container in ordered:
        for env in getattr(container, "env", None) or []:
            if env.name == name and env.value:
                return env.value
    return ""


def control_plane_url(cluster: Cluster, ns: str, pod: Any, container: str, deployment: str) -> str:
    """`CONTROL_PLANE_URL` of the pod's agent container, else of the agent Deployment's template; ""."""
    url = _env_value(pod.spec.containers, "CONTROL_PLANE_URL", container)
    if url or not deployment:
        return url
    try:
        dep = cluster.apps.read_namespaced_deployment(deployment, ns)
    except KubeError as exc:
        if exc.status == 404:
            return ""
        raise
    return _env_value(dep.spec.template.spec.containers, "CONTROL_PLANE_URL", container)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _service_of(host: str, ns: str) -> Tuple[str, str]:
    """(service, namespace) named by a cluster host name: `svc`, `svc.ns`, `svc.ns.svc[.cluster.local]`."""
    parts = host.rstrip(".").split(".")
    if len(parts) == 1:
        return parts[0], ns
    if len(parts) == 2 or parts[2] == "svc":
        return parts[0], parts[1]
    raise ActivityFailed(
        f"The agent's CONTROL_PLANE_URL host {host!r} is not a cluster Service name: give the route as "
        "'destinations' (address:port)."
    )


def resolve_route(cluster: Cluster, ns: str, url: str) -> Dict[str, Any]:
    """Resolve `url` to the destinations to drop: `{"url", "service", "destinations": [[addr, port], ...],
    "forms": {"service": [...], "endpoints": [...]}}`."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme, 0)
    except ValueError:
        port = 0
    if not host or not port:
        raise ActivityFailed(
            f"The agent's CONTROL_PLANE_URL {url!r} has no host or port: give the route as 'destinations'."
        )
    if _is_ip(host):
        return {
            "url": url,
            "service": None,
            "destinations": [[host, port]],
            "forms": {"address": [[host, port]]},
        }
    name, svc_ns = _service_of(host, ns)
    try:
        service = cluster.core.read_namespaced_service(name, svc_ns)
    except KubeError as exc:
        if exc.status == 404:
            raise ActivityFailed(
                f"The agent dials {url} but there is no Service {svc_ns}/{name}: give the route as 'destinations'."
            ) from None
        raise
    spec = service.spec
    if (spec.type or "ClusterIP") == "ExternalName":
        raise ActivityFailed(
            f"Service {svc_ns}/{name} is an ExternalName ({spec.external_name}): give the route as 'destinations'."
        )
    svc_port = next((p for p in spec.ports or [] if p.port == port), None)
    if svc_port is None:
        raise ActivityFailed(
            f"Service {svc_ns}/{name} has no port {port} (the agent's CONTROL_PLANE_URL {url}): check the agent's "
            "configuration or give 'destinations'."
        )
    cluster_ips = [ip for ip in (spec.cluster_ips or [spec.cluster_ip] or []) if ip and ip != "None"]
    pre = [[ip, port] for ip in cluster_ips]
    post: List[List[Any]] = []
    target = svc_port.target_port if svc_port.target_port is not None else port
    try:
        endpoints = cluster.core.read_namespaced_endpoints(name, svc_ns)
        subsets = endpoints.subsets or []
    except KubeError as exc:
        if exc.status != 404:
            raise
        subsets = []
    try:
        # EndpointSlices carry every family (v1 Endpoints list the primary family only).
        slices = cluster.discovery.list_namespaced_endpoint_slice(
            svc_ns, label_selector=f"kubernetes.io/service-name={name}"
        ).items
    except KubeError:
        slices = []
    for item in slices:
        ports = item.ports or []
        match = next(
            (
                p.port
                for p in ports
                if (svc_port.name and p.name == svc_port.name) or (not svc_port.name and len(ports) == 1)
            ),
            target if isinstance(target, int) else None,
        )
        if match is None:
            continue
        for endpoint in item.endpoints or []:
            for address in endpoint.addresses or []:
                post.append([address, match])
    for subset in subsets:
        ports = subset.ports or []
        match: Optional[int] = None
        for ep_port in ports:
            if (svc_port.name and ep_port.name == svc_port.name) or (not svc_port.name and len(ports) == 1):
                match = ep_port.port
        if match is None and isinstance(target, int):
            match = target
        if match is None:
            continue
        for address in list(subset.addresses or []) + list(subset.not_ready_addresses or []):
            post.append([address.ip, match])
    if not pre and not post:
        raise ActivityFailed(
            f"Service {svc_ns}/{name} has neither a ClusterIP nor endpoints: give the route as 'destinations'."
        )
    seen, dests = set(), []
    for item in pre + post:
        key = (item[0], int(item[1]))
        if key not in seen:
            seen.add(key)
            dests.append([item[0], int(item[1])])
    return {
        "url": url,
        "service": f"{svc_ns}/{name}",
        "destinations": dests,
        "forms": {"service": pre, "endpoints": post},
    }


def parse_destinations(values: List[Any]) -> List[List[Any]]:
    """`["10.0.0.5:8000", "[fd00::5]:8000"]` -> `[["10.0.0.5", 8000], ["fd00::5", 8000]]`; one sentence
    on a bad item."""
    out = []
    for value in values:
        text = str(value).strip() if isinstance(value, str) else ""
        split = urlsplit("//" + text)
        try:
            port = split.port
        except ValueError:
            port = None
        host = split.hostname or ""
        if not text or not port or not _is_ip(host):
            raise ActivityFailed(
                f"Argument 'destinations' must list address:port items (an IP address, IPv6 in brackets, and a "
                f"port), not {value!r}."
            )
        out.append([host, port])
    return out


def _service_destinations(cluster: Cluster, ns: str, name: str, default_port: int) -> List[List[Any]]:
    try:
        service = cluster.core.read_namespaced_service(name, ns)
    except KubeError:
        return []
    ports = [p.port for p in service.spec.ports or [] if (p.protocol or "TCP") == "TCP"] or [default_port]
    ips = service.spec.cluster_ips or [service.spec.cluster_ip]
    return [[ip, ports[0]] for ip in ips if ip and ip != "None"]


def kube_api_destinations(cluster: Cluster) -> List[List[Any]]:
    """What must stay reachable from the pod, as pods reach it: the kube-apiserver (Service
    default/kubernetes) and cluster DNS over TCP (kube-system/kube-dns); what cannot be read is skipped."""
    return _service_destinations(cluster, "default", "kubernetes", 443) + _service_destinations(
        cluster, "kube-system", "kube-dns", 53
    )
