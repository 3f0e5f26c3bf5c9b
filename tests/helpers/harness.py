"""`Harness`, for the activity catalog and bad-input tests: activities called as Chaos Toolkit calls them
(keyword arguments plus `configuration`/`secrets`) against a real sandbox, and a snapshot of everything
an activity could change (agents, sessions, commands, pods, Deployments, NetworkPolicies)."""

import json
from typing import Any, Callable, Dict

import httpx
import psycopg
from kubernetes import client, config


class Harness:
    """Calls activities against one sandbox and observes it independently of the code under test."""

    def __init__(self, sandbox: Any) -> None:
        self.sandbox = sandbox
        self.env = sandbox.env
        self.agent_id = sandbox.env["STREAMSPACE_AGENT_ID"]
        self._api = config.new_client_from_config(config_file=self.env["KUBECONFIG"])
        self.core = client.CoreV1Api(self._api)
        self.apps = client.AppsV1Api(self._api)
        self.net = client.NetworkingV1Api(self._api)

    def coordination(self) -> Any:
        return client.CoordinationV1Api(self._api)

    # -- calling activities ----------------------------------------------------------------------------
    def configuration(self, **extra: Any) -> Dict[str, Any]:
        return self.sandbox.configuration(**extra)

    def secrets(self, **extra: Any) -> Dict[str, Any]:
        return self.sandbox.secrets(**extra)

    def call(self, func: Callable[..., Any], *args: Any, cfg: Dict = None, sec: Dict = None, **kwargs: Any):
        return func(
            *args,
            **kwargs,
            configuration=self.configuration() if cfg is None else cfg,
            secrets=self.secrets() if sec is None else sec,
        )

    # -- independent observation -----------------------------------------------------------------------
    def sql(self, text: str, params: tuple = ()) -> list:
        with psycopg.connect(self.env["STREAMSPACE_DB_DSN"], autocommit=True) as conn:
            return conn.execute(text, params).fetchall()

    def pods(self, selector: str) -> Dict[str, Any]:
        items = self.core.list_namespaced_pod("streamspace", label_selector=selector).items
        return {p.metadata.name: p for p in items if p.metadata.deletion_timestamp is None}

    def agent_pods(self) -> Dict[str, Any]:
        return self.pods("app.kubernetes.io/component=k8s-agent")

    def deployment(self, name: str = "streamspace-k8s-agent") -> Any:
        return self.apps.read_namespaced_deployment(name, "streamspace")

    def token(self) -> str:
        response = httpx.post(
            f"{self.env['STREAMSPACE_API_URL']}/api/v1/auth/login",
            json={"username": self.env["STREAMSPACE_USERNAME"], "password": self.env["STREAMSPACE_PASSWORD"]},
            timeout=10,
        )
        response.raise_for_status()
        return response.json()["token"]

    def http(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(
            method,
            f"{self.env['STREAMSPACE_API_URL']}{path}",
            headers={"Authorization": f"Bearer {self.token()}"},
            timeout=10,
            **kwargs,
        )

    def snapshot(self) -> Dict[str, Any]:
        """Everything an activity might change, without volatile fields (heartbeat times)."""
        return {
            "agents": self.sql("SELECT agent_id, status, approval_status FROM agents ORDER BY agent_id"),
            "sessions": self.sql("SELECT id, state, agent_id FROM sessions ORDER BY id"),
            "commands": self.sql("SELECT command_id, status FROM agent_commands ORDER BY command_id"),
            "pods": sorted(
                (p.metadata.name, json.dumps(p.metadata.annotations or {}, sort_keys=True), p.status.phase)
                for p in self.core.list_namespaced_pod("streamspace").items
                if p.metadata.deletion_timestamp is None
            ),
            "deployments": sorted(
                (
                    d.metadata.name,
                    d.spec.replicas,
                    tuple(sorted((d.metadata.annotations or {}).items())),
                    tuple(sorted((d.spec.template.metadata.annotations or {}).items())),
                )
                for d in self.apps.list_namespaced_deployment("streamspace").items
            ),
            "policies": sorted(
                p.metadata.name for p in self.net.list_network_policy_for_all_namespaces().items
            ),
            # session records (and any other ConfigMap an activity might write), with their contents
            "configmaps": sorted(
                (
                    c.metadata.name,
                    json.dumps(c.metadata.annotations or {}, sort_keys=True),
                    json.dumps(c.data or {}, sort_keys=True),
                )
                for c in self.core.list_namespaced_config_map("streamspace").items
            ),
        }
