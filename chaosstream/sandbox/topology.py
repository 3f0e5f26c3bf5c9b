"""The chart's control-plane objects in the emulated cluster, shaped as a default `helm install streamspace`
renders them (release `streamspace`, so fullname `streamspace`).

* API: ServiceAccount and Deployment `streamspace-api`, **2 replicas** (`chart/values.yaml:234`), labels
  `app.kubernetes.io/{name,instance}=streamspace` + `component=api`, container `api` with port `http` 8000
  (`chart/templates/api-deployment.yaml:14-50`); without Redis (`redis.enabled=false`, values.yaml:450) the
  pods get `CACHE_ENABLED=false` and `AGENTHUB_REDIS_ENABLED=false` (api-deployment.yaml:105-127).
* PostgreSQL: PVC, StatefulSet and Service `streamspace-postgres`, 1 replica, component `database`, port
  `postgres` 5432 (`chart/templates/postgresql.yaml:1-104`).

The pods carry the annotation `sandbox.streamspace.io/process` (`api` / `postgres`): the sandbox's container
runtime runs them as the sandbox's control-plane replicas and its PostgreSQL server (sandbox/components.py).
"""

from typing import Any, Dict, List

__all__ = [
    "API_DEPLOYMENT",
    "API_LABELS",
    "POSTGRES_NAME",
    "POSTGRES_LABELS",
    "api_objects",
    "postgres_objects",
]

Obj = Dict[str, Any]
RELEASE = "streamspace"
SELECTOR = {"app.kubernetes.io/name": "streamspace", "app.kubernetes.io/instance": RELEASE}
API_DEPLOYMENT = "streamspace-api"
API_LABELS = dict(SELECTOR, **{"app.kubernetes.io/component": "api"})
POSTGRES_NAME = "streamspace-postgres"
POSTGRES_LABELS = dict(SELECTOR, **{"app.kubernetes.io/component": "database"})
PROCESS_ANNOTATION = "sandbox.streamspace.io/process"  # as processruntime.PROCESS_ANNOTATION


def api_objects(namespace: str, replicas: int, redis: bool) -> List[Obj]:
    """ServiceAccount and Deployment of the API; `redis` is the chart's `redis.enabled` (shared agent routing)."""
    flag = "true" if redis else "false"
    env: List[Obj] = [
        {"name": "API_PORT", "value": "8000"},
        {"name": "GIN_MODE", "value": "release"},
        {"name": "NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "PLATFORM", "value": "kubernetes"},
        # api-deployment.yaml:96-100: "POD_NAME is required for multi-pod AgentHub support"
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "CACHE_ENABLED", "value": flag},
        {"name": "AGENTHUB_REDIS_ENABLED", "value": flag},
    ]
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": API_DEPLOYMENT, "namespace": namespace, "labels": dict(API_LABELS)},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": API_DEPLOYMENT, "namespace": namespace, "labels": dict(API_LABELS)},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": dict(API_LABELS)},
                "template": {
                    "metadata": {"labels": dict(API_LABELS), "annotations": {PROCESS_ANNOTATION: "api"}},
                    "spec": {
                        "serviceAccountName": API_DEPLOYMENT,
                        "terminationGracePeriodSeconds": 30,
                        "securityContext": {
                            "runAsNonRoot": True,
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "containers": [
                            {
                                "name": "api",
                                "image": "ghcr.io/streamspace-dev/streamspace-api:v0.2.0",
                                "ports": [{"name": "http", "containerPort": 8000, "protocol": "TCP"}],
                                "env": env,
                                "securityContext": {
                                    "allowPrivilegeEscalation": False,
                                    "capabilities": {"drop": ["ALL"]},
                                },
                            }
                        ],
                    },
                },
            },
        },
    ]


def postgres_objects(namespace: str) -> List[Obj]:
    """PVC, StatefulSet and Service of the chart's internal PostgreSQL."""
    return [
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": POSTGRES_NAME, "namespace": namespace, "labels": dict(POSTGRES_LABELS)},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "20Gi"}}},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": POSTGRES_NAME, "namespace": namespace, "labels": dict(POSTGRES_LABELS)},
            "spec": {
                "serviceName": POSTGRES_NAME,
                "replicas": 1,
                "selector": {"matchLabels": dict(POSTGRES_LABELS)},
                "template": {
                    "metadata": {
                        "labels": dict(POSTGRES_LABELS),
                        "annotations": {PROCESS_ANNOTATION: "postgres"},
                    },
                    "spec": {
                        "securityContext": {
                            "fsGroup": 999,
                            "runAsNonRoot": True,
                            "runAsUser": 999,
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "containers": [
                            {
                                "name": "postgres",
                                "image": "docker.io/postgres:15-alpine",
                                "ports": [{"name": "postgres", "containerPort": 5432, "protocol": "TCP"}],
                                "env": [
                                    {"name": "POSTGRES_DB", "value": "streamspace"},
                                    {"name": "POSTGRES_USER", "value": "streamspace"},
                                    {"name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata"},
                                ],
                                "volumeMounts": [
                                    {"name": "postgres-data", "mountPath": "/var/lib/postgresql/data"}
                                ],
                                "securityContext": {
                                    "allowPrivilegeEscalation": False,
                                    "capabilities": {"drop": ["ALL"]},
                                },
                            }
                        ],
                        "volumes": [
                            {"name": "postgres-data", "persistentVolumeClaim": {"claimName": POSTGRES_NAME}}
                        ],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": POSTGRES_NAME, "namespace": namespace, "labels": dict(POSTGRES_LABELS)},
            "spec": {
                "type": "ClusterIP",
                "ports": [{"name": "postgres", "port": 5432, "targetPort": "postgres", "protocol": "TCP"}],
                "selector": dict(SELECTOR, **{"app.kubernetes.io/component": "database"}),
            },
        },
    ]
