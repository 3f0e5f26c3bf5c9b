"""Agent HA leader election (``ENABLE_HA=true``; ``agents/k8s-agent/internal/leaderelection/leader_election.go``).

Lease ``streamspace-agent-<AGENT_ID>`` in the agent's namespace, identity ``POD_NAME``; lease duration,
renew deadline and retry period from the timers (15 s / 10 s / 2 s real). As client-go's leader election:
a lease held by someone else counts as expired when its record has not changed for the lease duration
*as observed locally*; the leader renews every retry period and gives up (exits, so the kubelet restarts
it) when it could not renew within the renew deadline; it releases the lease on a clean shutdown.
Only the leader registers and connects: replicas of one fixed-id Deployment are standbys.
"""

import datetime as dt
import logging
import os
import threading
import time
import urllib.error
from typing import Any, Dict, Optional, Tuple

from chaosstream.sandbox.agent.kubeapi import Endpoint, json_call

log = logging.getLogger("k8s-agent")

_HTTP_TIMEOUT = 5.0


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _micro(when: dt.datetime) -> str:
    """A Lease MicroTime (RFC 3339 with microseconds), as client-go writes it."""
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class _LeaseApi:
    """The three Lease calls leader election makes, as plain JSON over HTTP (kubeapi.py: the python
    `kubernetes` client would cost seconds on the path from a new pod to its leadership)."""

    def __init__(self, kubeconfig: str, namespace: str, name: str) -> None:
        self.endpoint = Endpoint.load(kubeconfig)
        self.path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
        self.name = name

    def read(self) -> Dict[str, Any]:
        return json_call(self.endpoint, "GET", f"{self.path}/{self.name}", None, _HTTP_TIMEOUT)

    def create(self, body: Dict[str, Any]) -> None:
        json_call(self.endpoint, "POST", self.path, body, _HTTP_TIMEOUT)

    def replace(self, body: Dict[str, Any]) -> None:
        json_call(self.endpoint, "PUT", f"{self.path}/{self.name}", body, _HTTP_TIMEOUT)


def _status(exc: BaseException) -> Optional[int]:
    return exc.code if isinstance(exc, urllib.error.HTTPError) else None


class LeaderElector:
    def __init__(self, agent_id: str, namespace: str, identity: str, timers: Any, kubeconfig: str) -> None:
        self.name = f"streamspace-agent-{agent_id}"
        self.namespace = namespace
        self.api = _LeaseApi(kubeconfig, namespace, self.name)
        self.identity = identity
        self.timers = timers
        self._observed: Tuple[Any, Any] = (None, None)
        self._observed_at = 0.0
        self._stop = threading.Event()

    def _body(self, resource_version: Optional[str], acquire: Optional[str]) -> Dict[str, Any]:
        now = _micro(_now())
        meta: Dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if resource_version:
            meta["resourceVersion"] = resource_version
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": meta,
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": max(1, round(self.timers.lease_duration)),
                "acquireTime": acquire or now,
                "renewTime": now,
            },
        }

    def try_acquire_or_renew(self) -> bool:
        errors = (urllib.error.URLError, OSError, ValueError)
        try:
            lease = self.api.read()
        except errors as exc:
            if _status(exc) != 404:
                return False
            try:
                self.api.create(self._body(None, None))
                return True
            except errors:
                return False
        spec = lease.get("spec") or {}
        record = (spec.get("holderIdentity"), spec.get("renewTime"))
        if record != self._observed:
            self._observed, self._observed_at = record, time.monotonic()
        holder = spec.get("holderIdentity") or ""
        expired = time.monotonic() > self._observed_at + self.timers.lease_duration
        if holder and holder != self.identity and not expired:
            return False
        acquire = spec.get("acquireTime") if holder == self.identity else None
        try:
            self.api.replace(self._body((lease.get("metadata") or {}).get("resourceVersion"), acquire))
        except errors:
            return False
        if holder != self.identity:
            log.info("Became leader (lease %s, previous holder %s)", self.name, holder or "-")
        return True

    def wait_until_leader(self) -> None:
        log.info("HA enabled: waiting for lease %s (identity %s)", self.name, self.identity)
        while not self.try_acquire_or_renew():
            time.sleep(self.timers.lease_retry)

    def keep_renewing(self) -> None:
        """Renew in a thread; exit the process when the renew deadline passes (OnStoppedLeading)."""

        def loop() -> None:
            last = time.monotonic()
            while not self._stop.wait(self.timers.lease_retry):
                if self.try_acquire_or_renew():
                    last = time.monotonic()
                elif time.monotonic() - last > self.timers.lease_renew_deadline:
                    log.error("Lost leadership of %s (renew deadline passed): exiting", self.name)
                    logging.shutdown()
                    os._exit(1)

        threading.Thread(target=loop, name="lease", daemon=True).start()

    def release(self) -> None:
        """ReleaseOnCancel: empty the holder so a standby takes over at once."""
        self._stop.set()
        try:
            lease = self.api.read()
            if (lease.get("spec") or {}).get("holderIdentity") == self.identity:
                lease["spec"]["holderIdentity"] = ""
                self.api.replace(lease)
        except Exception as exc:  # best effort, as client-go's release
            log.warning("Could not release lease %s: %s", self.name, exc)
