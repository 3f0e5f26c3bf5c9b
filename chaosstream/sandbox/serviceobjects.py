"""A ClusterIP Service as the sandbox's clusters hold it: the Service, one EndpointSlice per address family
and the v1 Endpoints (primary family only), pointing at one address — what kube-proxy's rules route."""

import contextlib
from typing import Any, Dict, List, Tuple

__all__ = ["service_objects", "publish_kubernetes_service"]


def service_objects(
    ns: str,
    name: str,
    cluster_ips: List[str],
    port: int,
    port_name: str,
    endpoints: List[Tuple[str, str]],
    target_port: int,
) -> List[Dict[str, Any]]:
    """Manifests for Service `ns/name` (`cluster_ips`: primary first) with `endpoints` as (family, address)
    pairs, primary family first."""
    families = [family for family, _ in endpoints]
    ports = [{"name": port_name, "port": target_port, "protocol": "TCP"}]
    out: List[Dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": ns},
            "spec": {
                "type": "ClusterIP",
                "clusterIP": cluster_ips[0],
                "clusterIPs": cluster_ips,
                "ipFamilies": families,
                "ipFamilyPolicy": "PreferDualStack" if len(families) > 1 else "SingleStack",
                "ports": [{"name": port_name, "port": port, "targetPort": port_name, "protocol": "TCP"}],
            },
        }
    ]
    for family, address in endpoints:
        out.append(
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": f"{name}-{family.lower()}",
                    "namespace": ns,
                    "labels": {"kubernetes.io/service-name": name},
                },
                "addressType": family,
                "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
                "ports": ports,
            }
        )
    out.append(
        {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {"name": name, "namespace": ns},
            "subsets": [{"addresses": [{"ip": endpoints[0][1]}], "ports": ports}],
        }
    )
    return out


def publish_kubernetes_service(emulator: Any, cluster_ip: str, address: str, port: int) -> None:
    """Service default/kubernetes of `emulator`'s cluster: its kube-apiserver at address:port, single
    stack as on a real cluster (the primary family only)."""
    with contextlib.suppress(Exception):  # the emulator may hold namespace default already
        emulator.create_object({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}})
    for obj in service_objects(
        "default", "kubernetes", [cluster_ip], 443, "https", [("IPv4", address)], port
    ):
        emulator.create_object(obj)
