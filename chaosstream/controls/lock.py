"""The run lock: one chaosstream run per StreamSpace namespace at a time.

* `LeaseLock` (the default): a `coordination.k8s.io/v1` Lease `chaosstream-run-lock` in the StreamSpace
  namespace, as Kubernetes' own leader election uses it: `holderIdentity`, `leaseDurationSeconds`
  (default 30), `renewTime`. The holder renews it every duration/3 while the run lives; a holder that
  stops renewing (SIGKILL, node loss) is taken over once `renewTime + leaseDurationSeconds` has passed.
  Every write carries the resourceVersion that was read, so two takers cannot both win.
* `FileLock`: the same lock as a JSON file, for runs where Kubernetes is unreachable.

`read_holder()` tells `chaosstream heal` whether a live run holds the lock (and whose it is).
"""

import datetime as dt
import fcntl
import json
import os
from typing import Any, Dict, Optional

from chaosstream.timeutil import epoch_iso, now_epoch, parse_timestamp

__all__ = [
    "LOCK_NAME",
    "LEASE_DURATION",
    "A_EXPERIMENT",
    "LockHeld",
    "LeaseLock",
    "FileLock",
    "LiveHolder",
    "read_holder",
    "remove_command",
]

LOCK_NAME = "chaosstream-run-lock"
LEASE_DURATION = 30
MANAGED_BY = {"app.kubernetes.io/managed-by": "chaosstream"}
A_HOLDER, A_EXPIRES, A_EXPERIMENT = (
    "chaosstream.io/holder",
    "chaosstream.io/expires-at",
    "chaosstream.io/experiment",
)


def remove_command(namespace: str) -> str:
    return f"kubectl delete lease -n {namespace} {LOCK_NAME}"


class LockHeld(Exception):
    """Another live holder owns the run lock."""

    def __init__(
        self, holder: str, expires_at: str, experiment: str, where: str = "", how_to: str = ""
    ) -> None:
        text = (
            f"{where + ' ' if where else ''}held by {holder} for experiment {experiment!r} until {expires_at}"
        )
        if how_to:
            text += f" (if that run is dead and you cannot wait, remove it: {how_to})"
        super().__init__(text)
        self.holder, self.expires_at, self.experiment = holder, expires_at, experiment


def _micro(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, dt.UTC)


def _epoch(value: Any) -> Optional[float]:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.timestamp()
    return parse_timestamp(value)


class LiveHolder(Dict[str, Any]):
    """holder, experiment, expires_at (ISO), where."""


def _lease_state(lease: Any) -> Dict[str, Any]:
    spec = lease.spec
    renewed = _epoch(spec.renew_time) if spec is not None else None
    duration = (spec.lease_duration_seconds if spec is not None else None) or LEASE_DURATION
    # an unreadable renewTime counts as expired (a lock must not live forever)
    expires = (renewed + duration) if renewed is not None else 0.0
    return {
        "holder": (spec.holder_identity if spec is not None else None) or "",
        "expires": expires,
        "expires_at": epoch_iso(expires, "seconds") if expires else "?",
        "experiment": (lease.metadata.annotations or {}).get(A_EXPERIMENT, "?"),
    }


class LeaseLock:
    """The run lock as a Lease; `core`-free: it needs only `cluster.coordination`."""

    def __init__(
        self,
        coordination: Any,
        namespace: str,
        holder: str,
        experiment: str,
        duration: float = LEASE_DURATION,
        context: str = "",
    ) -> None:
        self.api, self.namespace, self.holder, self.experiment = coordination, namespace, holder, experiment
        self.duration = max(1, int(round(duration)))
        self.where = _where(namespace, context)

    def _body(self, current: Any = None) -> Any:
        from kubernetes import client

        now = _micro(now_epoch())
        transitions = 0
        acquired = now
        if current is not None and current.spec is not None:
            transitions = current.spec.lease_transitions or 0
            if current.spec.holder_identity == self.holder:
                acquired = current.spec.acquire_time or now
            else:
                transitions += 1
        meta = client.V1ObjectMeta(
            name=LOCK_NAME,
            labels=dict(MANAGED_BY),
            annotations={A_EXPERIMENT: self.experiment},
            resource_version=current.metadata.resource_version if current is not None else None,
        )
        spec = client.V1LeaseSpec(
            holder_identity=self.holder,
            lease_duration_seconds=self.duration,
            acquire_time=acquired,
            renew_time=now,
            lease_transitions=transitions,
        )
        return client.V1Lease(api_version="coordination.k8s.io/v1", kind="Lease", metadata=meta, spec=spec)

    def _read(self) -> Any:
        return self.api.read_namespaced_lease(LOCK_NAME, self.namespace)

    def _held(self, state: Dict[str, Any]) -> LockHeld:
        return LockHeld(
            state["holder"],
            state["expires_at"],
            state["experiment"],
            self.where,
            remove_command(self.namespace),
        )

    def acquire(self) -> str:
        """Take the lock; returns 'created' or 'took over the expired lock of <holder>'; raises `LockHeld`."""
        from chaosstream.clients.kube import KubeError

        try:
            self.api.create_namespaced_lease(self.namespace, self._body())
            return "created"
        except KubeError as exc:
            if exc.status != 409:
                raise
        current = self._read()
        state = _lease_state(current)
        if state["holder"] and state["holder"] != self.holder and state["expires"] > now_epoch():
            raise self._held(state)
        try:  # expired, released (no holder) or ours: replace only if nobody changed it since we read it
            self.api.replace_namespaced_lease(LOCK_NAME, self.namespace, self._body(current))
        except KubeError as exc:
            if exc.status == 409:
                raise self._held(_lease_state(self._read())) from None
            raise
        if not state["holder"] or state["holder"] == self.holder:
            return "created"
        return f"took over the expired lock of {state['holder']}"

    def refresh(self) -> bool:
        """Renew the lease; False if it is no longer ours."""
        current = self._read()
        if current.spec is None or current.spec.holder_identity != self.holder:
            return False
        self.api.replace_namespaced_lease(LOCK_NAME, self.namespace, self._body(current))
        return True

    def release(self) -> None:
        """Delete the Lease if (and only if) we still hold it."""
        from kubernetes import client

        current = self._read()
        if current.spec is None or current.spec.holder_identity != self.holder:
            return
        pre = client.V1DeleteOptions(
            preconditions=client.V1Preconditions(resource_version=current.metadata.resource_version)
        )
        self.api.delete_namespaced_lease(LOCK_NAME, self.namespace, body=pre)


def _where(namespace: str, context: str = "") -> str:
    """The lock's place; with several clusters, the kube context says which cluster's Lease it is."""
    return f"Lease {namespace}/{LOCK_NAME}" + (f" (kube context {context})" if context else "")


def read_holder(cluster: Any, namespace: str, context: str = "") -> Optional[Dict[str, Any]]:
    """Who holds the namespace's run lock: {holder, experiment, expires_at, live, where}, or None (no Lease,
    or a released one). `live` is False once the holder stopped renewing it for the lease duration."""
    from chaosstream.clients.kube import KubeError

    try:
        lease = cluster.coordination.read_namespaced_lease(LOCK_NAME, namespace)
    except KubeError as exc:
        if exc.status == 404:
            return None
        raise
    state = _lease_state(lease)
    if not state["holder"]:
        return None
    state["live"] = state["expires"] > now_epoch()
    state["where"] = _where(namespace, context)
    return state


class FileLock:
    """The same lock as a JSON file in `streamspace_lock_dir`, for runs where Kubernetes is unreachable.
    An flock on a side file serialises the read-check-write (it only protects runs on one host/volume)."""

    def __init__(self, directory: str, namespace: str, holder: str, experiment: str, ttl: float) -> None:
        os.makedirs(directory, exist_ok=True)
        self.path = os.path.join(directory, f"{LOCK_NAME}-{namespace}.json")
        self.holder, self.experiment, self.ttl = holder, experiment, ttl
        self.where = f"file {self.path}"

    def _locked(self, fn: Any) -> Any:
        with open(self.path + ".guard", "a") as guard:
            fcntl.flock(guard, fcntl.LOCK_EX)
            try:
                return fn()
            finally:
                fcntl.flock(guard, fcntl.LOCK_UN)

    def _read(self) -> Dict[str, Any]:
        try:
            with open(self.path, encoding="utf-8") as fh:
                return json.load(fh)
        except (OSError, ValueError):
            return {}

    def _write(self) -> None:
        tmp = f"{self.path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(
                {
                    A_HOLDER: self.holder,
                    A_EXPIRES: epoch_iso(now_epoch() + self.ttl, "seconds"),
                    A_EXPERIMENT: self.experiment,
                },
                fh,
            )
        os.replace(tmp, self.path)

    def acquire(self) -> str:
        """Take the file lock; raises `LockHeld` if another live holder owns it."""

        def take() -> str:
            cur = self._read()
            holder = cur.get(A_HOLDER)
            # an unreadable expiry counts as expired (a lock must not live forever)
            if (
                holder
                and holder != self.holder
                and (parse_timestamp(cur.get(A_EXPIRES)) or 0.0) > now_epoch()
            ):
                raise LockHeld(
                    holder, cur.get(A_EXPIRES, "?"), cur.get(A_EXPERIMENT, "?"), self.where, f"rm {self.path}"
                )
            self._write()
            return f"took over the expired lock of {holder}" if holder else "created"

        return self._locked(take)

    def refresh(self) -> bool:
        """Push the expiry forward; False if the lock is no longer ours."""

        def push() -> bool:
            if self._read().get(A_HOLDER) != self.holder:
                return False
            self._write()
            return True

        return self._locked(push)

    def release(self) -> None:
        """Remove the file if we hold it."""

        def drop() -> None:
            if self._read().get(A_HOLDER) == self.holder:
                os.remove(self.path)

        self._locked(drop)
