"""Command handlers: start/stop/hibernate/wake a session, with the real agent's results and errors.

As ``agents/k8s-agent/agent_handlers.go`` does; see docs/streamspace.md#33-commands.
"""

import asyncio
import concurrent.futures
import logging
from typing import Any, Awaitable, Callable, Dict, Optional, Tuple

from chaosstream.sandbox.agent import protocol
from chaosstream.sandbox.agent.config import AgentConfig
from chaosstream.sandbox.agent.workloads import (
    VNC_PORT,
    SessionSpec,
    WorkloadError,
    Workloads,
    deployment_body,
    parse_template,
    pvc_body,
    service_body,
    session_cr_body,
)

log = logging.getLogger(__name__)

# The real agent polls every 2 s for at most 120 s; the poll scales with the timer set's start_timeout.
REAL_POLL_SECONDS = 2.0
REAL_START_TIMEOUT = 120.0

Result = Dict[str, Any]
SendFunc = Callable[[str], Awaitable[None]]


class CommandError(RuntimeError):
    """The command failed; its text becomes the ``failed`` message's ``error``."""


def _required_string(payload: Dict[str, Any], key: str) -> str:
    value = payload.get(key)
    if not isinstance(value, str) or not value:
        raise CommandError(f"missing or invalid {key}")
    return value


def _string(payload: Dict[str, Any], key: str) -> str:
    value = payload.get(key)
    return value if isinstance(value, str) else ""


class CommandHandlers:
    """Executes one command at a time; Kubernetes calls run in a thread executor."""

    def __init__(
        self,
        config: AgentConfig,
        workloads: Workloads,
        send: SendFunc,
        executor: Optional[concurrent.futures.Executor] = None,
        vnc: Optional[Any] = None,
    ) -> None:
        self._config = config
        self._vnc = vnc  # VncTunnels: start_session opens (as built), stop_session closes
        self._workloads = workloads
        self._send = send
        self._executor = executor
        timeout = config.timers.start_timeout
        self._start_timeout = timeout
        self._poll = max(0.05, REAL_POLL_SECONDS * timeout / REAL_START_TIMEOUT)
        self._actions: Dict[str, Callable[[Dict[str, Any]], Awaitable[Result]]] = {
            "start_session": self.start_session,
            "stop_session": self.stop_session,
            "hibernate_session": self.hibernate_session,
            "wake_session": self.wake_session,
        }

    async def handle(self, action: str, payload: Dict[str, Any]) -> Result:
        """Run ``action``; raise CommandError with the real agent's message on failure."""
        handler = self._actions.get(action)
        if handler is None:
            raise CommandError(f"unknown action: {action}")
        return await handler(payload)

    async def _k8s(self, func: Callable[..., Any], *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, func, *args)

    def _namespace(self, payload: Dict[str, Any]) -> str:
        return _string(payload, "namespace") or self._config.namespace

    async def _wait_for_ready_pod(self, namespace: str, session_id: str) -> Tuple[str, str]:
        """Poll like the real agent: first look one poll period in, give up after start_timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._start_timeout
        while True:
            await asyncio.sleep(min(self._poll, max(0.0, deadline - loop.time())))
            if loop.time() >= deadline:
                raise WorkloadError("timeout waiting for pod to be ready")
            found = await self._k8s(self._workloads.ready_pod, namespace, session_id)
            if found:
                log.info("Pod ready: %s (IP: %s)", found[0], found[1])
                return found

    async def start_session(self, payload: Dict[str, Any]) -> Result:
        """Deployment, Service, PVC (if persistentHome), wait for a Ready pod, Session CR, ``status`` message."""
        session_id = _required_string(payload, "sessionId")
        spec = SessionSpec(
            session_id=session_id,
            user=_required_string(payload, "user"),
            template=_required_string(payload, "template"),
            persistent_home=payload.get("persistentHome") is True,
            memory=_string(payload, "memory"),
            cpu=_string(payload, "cpu"),
        )
        namespace = self._namespace(payload)
        try:
            template = parse_template(payload["templateManifest"]) if "templateManifest" in payload else None
        except WorkloadError as exc:
            log.warning("No usable templateManifest in payload (%s), falling back to the Template CR", exc)
            template = None
        if template is None:
            try:
                manifest = await self._k8s(self._workloads.fetch_template, namespace, spec.template)
                template = parse_template(manifest)
            except WorkloadError as exc:
                raise CommandError(f"failed to get template {spec.template}: {exc}") from None
        log.info(
            "Starting session %s (user=%s, template=%s, image=%s, persistent=%s, namespace=%s)",
            session_id,
            spec.user,
            spec.template,
            template.base_image,
            spec.persistent_home,
            namespace,
        )

        # Created objects are not cleaned up on failure, as in the real agent.
        try:
            deployment = await self._k8s(
                self._workloads.create_deployment, deployment_body(namespace, spec, template)
            )
        except WorkloadError as exc:
            raise CommandError(f"failed to create deployment: {exc}") from None
        try:
            service = await self._k8s(self._workloads.create_service, service_body(namespace, spec))
        except WorkloadError as exc:
            raise CommandError(f"failed to create service: {exc}") from None
        pvc = ""
        if spec.persistent_home:
            try:
                pvc = await self._k8s(self._workloads.create_pvc, pvc_body(namespace, spec))
            except WorkloadError as exc:
                raise CommandError(f"failed to create PVC: {exc}") from None
        try:
            pod_name, pod_ip = await self._wait_for_ready_pod(namespace, session_id)
        except WorkloadError as exc:
            raise CommandError(f"pod not ready: {exc}") from None

        try:
            await self._k8s(
                self._workloads.create_session_cr, session_cr_body(namespace, spec, pod_name, pod_ip)
            )
        except WorkloadError as exc:
            log.warning("Failed to create Session CRD (ignored, it is informational): %s", exc)
        if self._vnc is not None:
            self._vnc.opened_session(session_id)  # agent_handlers.go:142-147, before the status message
        await self._send(protocol.session_status(session_id, "running", pod_name, pod_ip, VNC_PORT))
        log.info("Session %s started (pod: %s, IP: %s)", session_id, pod_name, pod_ip)
        return {
            "sessionId": session_id,
            "deployment": deployment,
            "service": service,
            "pvc": pvc,
            "podName": pod_name,
            "podIP": pod_ip,
            "vncPort": VNC_PORT,
            "state": "running",
        }

    async def stop_session(self, payload: Dict[str, Any]) -> Result:
        """Delete Deployment (foreground) and Service, the PVC only on ``deletePVC: true``; always succeeds."""
        session_id = _required_string(payload, "sessionId")
        namespace = self._namespace(payload)
        delete_pvc = payload.get("deletePVC") is True
        log.info("Deleting resources for session %s (deletePVC: %s)", session_id, delete_pvc)
        if self._vnc is not None and not await self._vnc.stop_session(
            session_id
        ):  # agent_handlers.go:212-217
            log.info("Failed to close VNC tunnel: tunnel not found for session %s", session_id)
        steps = [
            ("deployment", self._workloads.delete_deployment, session_id),
            ("service", self._workloads.delete_service, session_id),
        ]
        if delete_pvc:
            steps.append(("PVC", self._workloads.delete_pvc, session_id))
        for what, func, name in steps:
            try:
                await self._k8s(func, namespace, name)
            except WorkloadError as exc:
                log.warning("Failed to delete %s of %s: %s", what, session_id, exc)
        return {"sessionId": session_id, "state": "terminated"}

    async def hibernate_session(self, payload: Dict[str, Any]) -> Result:
        """Scale the Deployment to 0."""
        session_id = _required_string(payload, "sessionId")
        try:
            await self._k8s(self._workloads.scale_deployment, self._namespace(payload), session_id, 0)
        except WorkloadError as exc:
            raise CommandError(f"failed to scale deployment: {exc}") from None
        return {"sessionId": session_id, "state": "hibernated"}

    async def wake_session(self, payload: Dict[str, Any]) -> Result:
        """Scale the Deployment to 1 and wait for a Ready pod."""
        session_id = _required_string(payload, "sessionId")
        namespace = self._namespace(payload)
        try:
            await self._k8s(self._workloads.scale_deployment, namespace, session_id, 1)
        except WorkloadError as exc:
            raise CommandError(f"failed to scale deployment: {exc}") from None
        try:
            pod_name, pod_ip = await self._wait_for_ready_pod(namespace, session_id)
        except WorkloadError as exc:
            raise CommandError(f"pod not ready after wake: {exc}") from None
        return {
            "sessionId": session_id,
            "podName": pod_name,
            "podIP": pod_ip,
            "vncPort": VNC_PORT,
            "state": "running",
        }
