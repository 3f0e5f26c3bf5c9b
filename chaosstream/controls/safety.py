"""Safety control: signal-correct rollbacks and a run lock per StreamSpace target.

Enable it at the top of an experiment (before other controls, so its rollback replay is sampled by the
timeline control)::

    "controls": [{"name": "chaosstream-safety",
                  "provider": {"type": "python", "module": "chaosstream.controls.safety",
                               "arguments": {"ttl": 600}}}]

or globally with ``chaos run --control-file safety.yaml`` (a mapping ``name -> {provider: ...}``).

What it does:

* **Signals.** SIGTERM (Kubernetes pod deletion, CronJob deadline, CI cancel) and SIGINT are turned into
  chaoslib's graceful interruption: the running activity is interrupted, the run ends as ``interrupted``
  (never ``completed``, even when the python activity swallowed the exception - the next activity
  boundary re-raises it), and the rollbacks are played unless the rollback strategy is ``never``: under
  ``default``/``deviated`` chaoslib skips them for an interrupted run, so this control plays them itself in
  ``after_experiment_control`` and appends them to the journal's ``rollbacks``. Signals that arrive while
  rollbacks run are recorded but do not cut them short (chaoslib would abandon the remaining ones).
  SIGUSR2 (``chaoslib.exit.exit_ungracefully``) stays the kill switch that skips rollbacks.
* **Run lock.** ``before_experiment_control`` takes the ConfigMap ``chaosstream-run-lock`` in the
  StreamSpace namespace (create; on 409 read it, and take it over with a resourceVersion-checked replace
  only if it expired), refreshes it from a heartbeat thread every ``ttl / 3`` seconds and deletes it at the
  end. If another holder's lock is live the run is refused with ``InterruptExecution`` and no rollback is
  played (they would revert the other run's faults). When Kubernetes cannot be reached, a file lock in
  ``streamspace_lock_dir`` is used if that is configured; otherwise the run is refused.

Everything it did lands in the journal as ``extensions: [{"name": "chaosstream-safety", ...}]``.
"""

import fcntl
import json
import logging
import os
import signal
import socket
import sys
import threading
import uuid
from typing import Any, Dict, List, Mapping, Optional

from chaoslib.exceptions import InterruptExecution
from chaoslib.settings import get_loaded_settings
from chaoslib.types import Configuration, Experiment, Journal, Run, Secrets

from chaosstream.journal.schema import SAFETY_EXTENSION
from chaosstream.settings import redact, resolve_settings
from chaosstream.timeutil import epoch_iso, now_epoch, parse_timestamp

__all__ = [
    "LOCK_NAME",
    "LockHeld",
    "ConfigMapLock",
    "FileLock",
    "configure_control",
    "before_experiment_control",
    "before_activity_control",
    "after_activity_control",
    "before_rollback_control",
    "after_rollback_control",
    "after_experiment_control",
    "cleanup_control",
]

logger = logging.getLogger("chaostoolkit")

LOCK_NAME = "chaosstream-run-lock"
MANAGED_BY = {"app.kubernetes.io/managed-by": "chaosstream"}
A_HOLDER, A_EXPIRES, A_EXPERIMENT = (
    "chaosstream.io/holder",
    "chaosstream.io/expires-at",
    "chaosstream.io/experiment",
)
_K8S_TIMEOUT = 5.0


class LockHeld(Exception):
    """Another live holder owns the run lock."""

    def __init__(self, holder: str, expires_at: str, experiment: str) -> None:
        super().__init__(f"held by {holder} for experiment {experiment!r} until {expires_at}")
        self.holder, self.expires_at, self.experiment = holder, expires_at, experiment


class ConfigMapLock:
    """A lease-like lock stored as a ConfigMap; every write is checked against the resourceVersion read."""

    def __init__(self, core: Any, namespace: str, holder: str, experiment: str, ttl: float) -> None:
        self.core, self.namespace, self.holder, self.experiment, self.ttl = (
            core,
            namespace,
            holder,
            experiment,
            ttl,
        )
        self.where = f"ConfigMap {namespace}/{LOCK_NAME}"

    def _body(self, resource_version: Optional[str] = None) -> Any:
        from kubernetes import client

        annotations = {
            A_HOLDER: self.holder,
            A_EXPIRES: epoch_iso(now_epoch() + self.ttl, "seconds"),
            A_EXPERIMENT: self.experiment,
        }
        meta = client.V1ObjectMeta(
            name=LOCK_NAME,
            labels=dict(MANAGED_BY),
            annotations=annotations,
            resource_version=resource_version,
        )
        return client.V1ConfigMap(api_version="v1", kind="ConfigMap", metadata=meta, data=dict(annotations))

    def _read(self) -> Any:
        return self.core.read_namespaced_config_map(LOCK_NAME, self.namespace)

    def acquire(self) -> str:
        """Take the lock; returns 'created' or 'took over expired lock of <holder>'; raises `LockHeld`."""
        from chaosstream.clients.kube import KubeError

        try:
            self.core.create_namespaced_config_map(self.namespace, self._body())
            return "created"
        except KubeError as exc:
            if exc.status != 409:
                raise
        current = self._read()
        ann = current.metadata.annotations or {}
        holder = ann.get(A_HOLDER, "?")
        # an unreadable expiry counts as expired (a lock must not live forever)
        if holder != self.holder and (parse_timestamp(ann.get(A_EXPIRES)) or 0.0) > now_epoch():
            raise LockHeld(holder, ann.get(A_EXPIRES, "?"), ann.get(A_EXPERIMENT, "?"))
        try:  # expired (or ours): replace only if nobody changed it since we read it
            self.core.replace_namespaced_config_map(
                LOCK_NAME,
                self.namespace,
                self._body(current.metadata.resource_version),
            )
        except KubeError as exc:
            if exc.status == 409:
                fresh = self._read().metadata.annotations or {}
                raise LockHeld(
                    fresh.get(A_HOLDER, "?"), fresh.get(A_EXPIRES, "?"), fresh.get(A_EXPERIMENT, "?")
                ) from None
            raise
        return f"took over the expired lock of {holder}"

    def refresh(self) -> bool:
        """Push the expiry forward; False if the lock is no longer ours."""
        current = self._read()
        if (current.metadata.annotations or {}).get(A_HOLDER) != self.holder:
            return False
        self.core.replace_namespaced_config_map(
            LOCK_NAME,
            self.namespace,
            self._body(current.metadata.resource_version),
        )
        return True

    def release(self) -> None:
        """Delete the lock if (and only if) we still hold it."""
        from kubernetes import client

        current = self._read()
        if (current.metadata.annotations or {}).get(A_HOLDER) != self.holder:
            return
        pre = client.V1DeleteOptions(
            preconditions=client.V1Preconditions(resource_version=current.metadata.resource_version)
        )
        self.core.delete_namespaced_config_map(LOCK_NAME, self.namespace, body=pre)


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
                raise LockHeld(holder, cur.get(A_EXPIRES, "?"), cur.get(A_EXPERIMENT, "?"))
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


class _State:
    """Per-run state (chaoslib imports a control module once per process)."""

    def __init__(self) -> None:
        self.phase = "starting"  # starting | running | rollbacks | finishing
        self.signals: List[Dict[str, Any]] = []
        self.pending_interrupt: Optional[str] = None
        self.previous: Dict[int, Any] = {}
        self.refused: Optional[str] = None
        self.rollbacks_played = False
        self.rollbacks_replayed = False
        self.lock: Any = None
        self.lock_info: Dict[str, Any] = {}
        self.stop = threading.Event()
        self.heartbeat: Optional[threading.Thread] = None
        self.reported = False


_state = _State()


# -- signals -------------------------------------------------------------------------------------------
def _on_signal(signum: int, frame: Any) -> None:
    name = signal.Signals(signum).name
    _state.signals.append({"signal": name, "at": epoch_iso(now_epoch(), "seconds"), "phase": _state.phase})
    if _state.phase in ("rollbacks", "finishing"):
        # Cutting rollbacks short is how faults stay behind (chaostoolkit-facts C.2); finish them first.
        logger.warning(f"Received {name} while rolling back: finishing the rollbacks first")
        return
    _state.pending_interrupt = f"{name} signal received"
    logger.warning(f"Received {name}: interrupting the experiment; rollbacks will be played")
    raise InterruptExecution(_state.pending_interrupt)


def _install_handlers() -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        if sig in _state.previous:
            continue
        try:
            _state.previous[sig] = signal.signal(sig, _on_signal)
        except ValueError:  # not the main thread: chaoslib runs controls in the main thread, but be safe
            logger.debug("chaosstream-safety: cannot install signal handlers outside the main thread")


def _restore_handlers() -> None:
    for sig, handler in list(_state.previous.items()):
        try:
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        except (ValueError, TypeError):
            pass
    _state.previous.clear()


# -- lock ----------------------------------------------------------------------------------------------
# One holder id per process: a control declared both globally and in the experiment re-enters the lock.
_HOLDER = f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"


def _holder() -> str:
    return _HOLDER


def _kube_secrets(secrets: Optional[Mapping[str, Any]]) -> Optional[Mapping[str, Any]]:
    """KUBECONFIG / KUBERNETES_* keys from the `kubernetes` or `streamspace` scope (controls get all scopes)."""
    if not isinstance(secrets, Mapping):
        return None
    merged: Dict[str, Any] = {}
    for scope in ("streamspace", "kubernetes"):
        if isinstance(secrets.get(scope), Mapping):
            merged.update(secrets[scope])
    return merged or None


def _take_lock(ttl: float, experiment: Mapping[str, Any], configuration: Any, secrets: Any) -> None:
    if _state.lock is not None:  # declared twice (global + experiment): already ours
        return
    settings = resolve_settings(configuration, secrets)
    title = str(experiment.get("title") or "chaos experiment")[:200]
    holder = _holder()
    try:
        from chaosstream.clients.kube import Cluster

        cluster = Cluster(_kube_secrets(secrets), timeout=_K8S_TIMEOUT)
        lock: Any = ConfigMapLock(cluster.core, settings.namespace, holder, title, ttl)
        how = lock.acquire()
    except LockHeld:
        raise
    except Exception as exc:  # unreachable API, RBAC, config: fall back or refuse, with the reason
        status = getattr(exc, "status", None)
        reason = redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, settings)
        if status in (401, 403):
            raise InterruptExecution(
                f"chaosstream-safety cannot take the run lock: Kubernetes refused access to ConfigMaps in "
                f"{settings.namespace} ({status}); grant configmaps get/create/update/delete "
                "(deploy/kubernetes/rbac.yaml) or set the control argument lock to false."
            ) from None
        if not settings.lock_dir:
            raise InterruptExecution(
                f"chaosstream-safety cannot take the run lock because Kubernetes is unreachable ({reason}); "
                "set 'streamspace_lock_dir' for a local file lock or the control argument lock to false."
            ) from None
        logger.warning(f"chaosstream-safety: Kubernetes unreachable ({reason}); using a file lock instead")
        lock = FileLock(settings.lock_dir, settings.namespace, holder, title, ttl)
        how = lock.acquire()
    _state.lock = lock
    _state.lock_info = {"where": lock.where, "holder": holder, "ttl_s": ttl, "acquired": how, "refreshes": 0}
    logger.info(f"chaosstream-safety: run lock {lock.where} {how} by {holder}")
    _state.stop.clear()
    _state.heartbeat = threading.Thread(
        target=_heartbeat, args=(lock, ttl), name="chaosstream-lock", daemon=True
    )
    _state.heartbeat.start()


def _heartbeat(lock: Any, ttl: float) -> None:
    while not _state.stop.wait(max(ttl / 3.0, 0.2)):
        try:
            if lock.refresh():
                _state.lock_info["refreshes"] += 1
            else:
                _state.lock_info["lost"] = True
                logger.error("chaosstream-safety: the run lock was taken by someone else")
                return
        except Exception as exc:  # keep trying; the expiry leaves room for a few missed refreshes
            _state.lock_info["refresh_errors"] = _state.lock_info.get("refresh_errors", 0) + 1
            _state.lock_info["last_error"] = redact(
                str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            )


def _release_lock() -> None:
    _state.stop.set()
    if _state.heartbeat is not None:
        _state.heartbeat.join(timeout=_K8S_TIMEOUT + 1)
        _state.heartbeat = None
    if _state.lock is not None:
        try:
            _state.lock.release()
            _state.lock_info["released"] = True
        except Exception as exc:  # the expiry frees it anyway
            _state.lock_info["release_error"] = redact(str(exc).splitlines()[0] if str(exc) else repr(exc))
        _state.lock = None


# -- rollbacks -----------------------------------------------------------------------------------------
def _strategy(settings: Optional[Mapping[str, Any]], experiment: Optional[Mapping[str, Any]] = None) -> str:
    """The effective rollback strategy, in `chaos run`'s precedence: settings, experiment, CLI flag.

    chaoslib hands controls the *loaded* settings, which lack the CLI's runtime merge when no settings
    file exists, so the experiment's `runtime` block and `--rollback-strategy` are read here as well."""
    settings = settings if settings else (get_loaded_settings() or {})
    strategy = ((settings.get("runtime") or {}).get("rollbacks") or {}).get("strategy") or "default"
    runtime = (experiment or {}).get("runtime")
    if isinstance(runtime, Mapping):  # chaostoolkit resets to "default" when the block lacks rollbacks
        strategy = (runtime.get("rollbacks") or {}).get("strategy") or "default"
    argv = list(sys.argv)
    for i, arg in enumerate(argv):
        if arg.startswith("--rollback-strategy="):
            strategy = arg.split("=", 1)[1]
        elif arg == "--rollback-strategy" and i + 1 < len(argv):
            strategy = argv[i + 1]
    return str(strategy)


def _replay_rollbacks(experiment: Experiment, journal: Journal, configuration: Any, secrets: Any) -> None:
    from chaoslib.run import apply_rollbacks, get_background_pools

    runs = journal.setdefault("rollbacks", [])
    _, pool = get_background_pools(experiment)
    logger.warning("chaosstream-safety: playing the rollbacks after the interruption")
    _state.rollbacks_replayed = True
    try:
        apply_rollbacks(experiment, configuration, secrets, pool, experiment.get("dry"), None, runs)
    except SystemExit as exc:  # SIGUSR2 is the explicit "leave now" switch
        logger.warning(f"chaosstream-safety: rollbacks abandoned on exit signal {exc.code}")
    except Exception as exc:
        logger.error(f"chaosstream-safety: rollbacks raised {exc!r}")


# -- control hooks -------------------------------------------------------------------------------------
def configure_control(
    ttl: float = 600,
    lock: bool = True,
    rollback_on_signal: bool = True,
    configuration: Configuration = None,
    secrets: Secrets = None,
    **_: Any,
) -> None:
    """Reset the per-run state and install the SIGTERM/SIGINT handlers as early as possible."""
    global _state
    _restore_handlers()
    _state = _State()
    _install_handlers()


def before_experiment_control(
    context: Experiment,
    ttl: float = 600,
    lock: bool = True,
    rollback_on_signal: bool = True,
    configuration: Configuration = None,
    secrets: Secrets = None,
    **_: Any,
) -> None:
    """Install the signal handlers and take the run lock; refuse to start if another run holds it."""
    _install_handlers()
    if lock:
        try:
            _take_lock(float(ttl), context or {}, configuration, secrets)
        except LockHeld as held:
            _state.refused = (
                f"Another chaosstream experiment already runs against this StreamSpace target: the run lock is "
                f"{held}; refusing to start (wait for it to finish, or delete the lock if that run is dead)."
            )
            _state.lock_info = {"refused": str(held)}
            raise InterruptExecution(_state.refused) from None
        except InterruptExecution as exc:
            _state.refused = str(exc)
            raise
    _state.phase = "running"
    if _state.pending_interrupt:  # a signal landed before we were ready
        raise InterruptExecution(_state.pending_interrupt)


def before_activity_control(context: Any = None, **_: Any) -> None:
    """Stop at the activity boundary once a signal was received (the activity may have swallowed it)."""
    if _state.pending_interrupt and _state.phase == "running":
        raise InterruptExecution(_state.pending_interrupt)


def after_activity_control(context: Any = None, state: Run = None, **_: Any) -> None:
    """A signal swallowed inside a python activity (it becomes ActivityFailed) still interrupts the run."""
    if _state.pending_interrupt and _state.phase == "running":
        raise InterruptExecution(_state.pending_interrupt)


def before_rollback_control(context: Any = None, **_: Any) -> None:
    """Rollbacks are not interruptible by SIGTERM/SIGINT; a refused run plays none (they are not ours)."""
    if _state.refused:
        raise InterruptExecution(
            "chaosstream-safety: no rollbacks for a run that was refused by the run lock"
        )
    _state.phase = "rollbacks"


def after_rollback_control(context: Any = None, state: Any = None, **_: Any) -> None:
    """Remember that the rollbacks ran, so they are not played twice."""
    _state.rollbacks_played = True
    _state.phase = "finishing"


def after_experiment_control(
    context: Experiment,
    state: Journal = None,
    ttl: float = 600,
    lock: bool = True,
    rollback_on_signal: bool = True,
    configuration: Configuration = None,
    secrets: Secrets = None,
    settings: Any = None,
    **_: Any,
) -> None:
    """Play the rollbacks skipped because of a signal, mark the run interrupted, report, release the lock."""
    journal = state if isinstance(state, dict) else {}
    try:
        _state.phase = "finishing"
        strategy = _strategy(settings, context)
        if (
            _state.signals
            and not _state.refused
            and not _state.rollbacks_played
            and rollback_on_signal
            and strategy != "never"
            and context
        ):
            _state.phase = "rollbacks"
            _replay_rollbacks(context, journal, configuration, secrets)
            _state.phase = "finishing"
        if _state.signals and journal:
            journal["status"] = "interrupted"
    finally:
        _release_lock()
        _report(journal, _strategy(settings, context))


def _report(journal: Dict[str, Any], strategy: str) -> None:
    if not journal or _state.reported:
        return
    _state.reported = True
    entry = {
        "name": SAFETY_EXTENSION,
        "signals": list(_state.signals),
        "rollback_strategy": strategy,
        "rollbacks_replayed": _state.rollbacks_replayed,
        "refused": _state.refused,
        "lock": dict(_state.lock_info),
    }
    extensions = journal.get("extensions")
    if not isinstance(extensions, list):
        extensions = journal["extensions"] = []
    extensions.append(entry)


def cleanup_control(**_: Any) -> None:
    """Release the lock if still held and put the previous signal handlers back."""
    try:
        _release_lock()
    finally:
        _restore_handlers()
