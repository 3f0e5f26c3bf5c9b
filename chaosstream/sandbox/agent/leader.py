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
from typing import Any, Optional, Tuple

log = logging.getLogger("k8s-agent")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class LeaderElector:
    def __init__(self, agent_id: str, namespace: str, identity: str, timers: Any, kubeconfig: str) -> None:
        import kubernetes  # lazy: only HA agents pay for it

        api = kubernetes.config.new_client_from_config(config_file=kubeconfig)
        self._k8s = kubernetes
        self.api = kubernetes.client.CoordinationV1Api(api)
        self.name = f"streamspace-agent-{agent_id}"
        self.namespace = namespace
        self.identity = identity
        self.timers = timers
        self._observed: Tuple[Any, Any] = (None, None)
        self._observed_at = 0.0
        self._stop = threading.Event()

    def _body(self, resource_version: Optional[str], acquire: Optional[dt.datetime]) -> Any:
        client = self._k8s.client
        now = _now()
        return client.V1Lease(
            metadata=client.V1ObjectMeta(
                name=self.name, namespace=self.namespace, resource_version=resource_version
            ),
            spec=client.V1LeaseSpec(
                holder_identity=self.identity,
                lease_duration_seconds=max(1, round(self.timers.lease_duration)),
                acquire_time=acquire or now,
                renew_time=now,
            ),
        )

    def try_acquire_or_renew(self) -> bool:
        ApiException = self._k8s.client.exceptions.ApiException
        try:
            lease = self.api.read_namespaced_lease(self.name, self.namespace)
        except ApiException as exc:
            if exc.status != 404:
                return False
            try:
                self.api.create_namespaced_lease(self.namespace, self._body(None, None))
                return True
            except ApiException:
                return False
        spec = lease.spec
        record = (spec.holder_identity, spec.renew_time)
        if record != self._observed:
            self._observed, self._observed_at = record, time.monotonic()
        holder = spec.holder_identity or ""
        expired = time.monotonic() > self._observed_at + self.timers.lease_duration
        if holder and holder != self.identity and not expired:
            return False
        acquire = spec.acquire_time if holder == self.identity else None
        try:
            self.api.replace_namespaced_lease(
                self.name, self.namespace, self._body(lease.metadata.resource_version, acquire)
            )
        except ApiException:
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
            lease = self.api.read_namespaced_lease(self.name, self.namespace)
            if lease.spec.holder_identity == self.identity:
                lease.spec.holder_identity = ""
                self.api.replace_namespaced_lease(self.name, self.namespace, lease)
        except Exception as exc:  # best effort, as client-go's release
            log.warning("Could not release lease %s: %s", self.name, exc)
