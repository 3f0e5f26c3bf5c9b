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
* **Run lock.** ``before_experiment_control`` takes the Lease ``chaosstream-run-lock``
  (``coordination.k8s.io/v1``) in the StreamSpace namespace (create; on 409 read it, and take it over with
  a resourceVersion-checked replace only if its holder stopped renewing it ``lease_duration`` seconds
  ago, default 30), renews it from a heartbeat thread every ``lease_duration / 3`` seconds and deletes it
  at the end (``chaosstream.controls.lock``). If another holder's lock is live the run is refused with ``InterruptExecution`` and no rollback is
  played (they would revert the other run's faults). When Kubernetes cannot be reached, a file lock in
  ``streamspace_lock_dir`` (expiring after ``ttl`` seconds) is used if that is configured; otherwise the
  run is refused.

Everything it did lands in the journal as ``extensions: [{"name": "chaosstream-safety", ...}]``.
"""

import logging
import os
import signal
import sys
import threading
from typing import Any, Dict, List, Mapping, Optional

from chaoslib.exceptions import InterruptExecution
from chaoslib.settings import get_loaded_settings
from chaoslib.types import Configuration, Experiment, Journal, Run, Secrets

from chaosstream.controls.lock import (
    A_EXPERIMENT,
    LEASE_DURATION,
    LOCK_NAME,
    FileLock,
    LeaseLock,
    LockHeld,
)
from chaosstream.faults.records import RUN_ID
from chaosstream.journal.schema import SAFETY_EXTENSION
from chaosstream.settings import redact, resolve_settings
from chaosstream.timeutil import epoch_iso, now_epoch

__all__ = [
    "LOCK_NAME",
    "A_EXPERIMENT",
    "LockHeld",
    "LeaseLock",
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

_K8S_TIMEOUT = 5.0


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
# It is the run id every fault and session record names as its owner, so a heal can tell a live run's.
_HOLDER = RUN_ID


def _holder() -> str:
    return _HOLDER


def _kube_secrets(secrets: Optional[Mapping[str, Any]]) -> Optional[Mapping[str, Any]]:
    """KUBECONFIG / KUBERNETES_* keys from the `kubernetes` or `streamspace` scope (controls get all scopes)."""
    from chaosstream.clients.kube import kube_secrets

    return kube_secrets(secrets)


def _take_lock(
    ttl: float, experiment: Mapping[str, Any], configuration: Any, secrets: Any, lease_duration: float
) -> None:
    if _state.lock is not None:  # declared twice (global + experiment): already ours
        return
    settings = resolve_settings(configuration, secrets)
    title = str(experiment.get("title") or "chaos experiment")[:200]
    holder = _holder()
    try:
        from chaosstream.clients.kube import Cluster

        kube = _kube_secrets(secrets)
        cluster = Cluster(kube, timeout=_K8S_TIMEOUT)
        # the run's own cluster: an explicit context is named in every lock message
        context = (kube or {}).get("KUBERNETES_CONTEXT") or os.environ.get("KUBERNETES_CONTEXT") or ""
        lock: Any = LeaseLock(
            cluster.coordination, settings.namespace, holder, title, lease_duration, context=context
        )
        how = lock.acquire()
        period = lock.duration / 3.0
    except LockHeld:
        raise
    except Exception as exc:  # unreachable API, RBAC, config: fall back or refuse, with the reason
        status = getattr(exc, "status", None)
        reason = redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, settings)
        if status in (401, 403):
            raise InterruptExecution(
                f"chaosstream-safety cannot take the run lock: Kubernetes refused access to the Lease "
                f"{settings.namespace}/{LOCK_NAME} ({status}); grant leases get/create/update/delete "
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
        period = ttl / 3.0
    _state.lock = lock
    _state.lock_info = {
        "where": lock.where,
        "holder": holder,
        "ttl_s": ttl if isinstance(lock, FileLock) else lock.duration,
        "acquired": how,
        "refreshes": 0,
    }
    logger.info(f"chaosstream-safety: run lock {lock.where} {how} by {holder}")
    _state.stop.clear()
    _state.heartbeat = threading.Thread(
        target=_heartbeat, args=(lock, period), name="chaosstream-lock", daemon=True
    )
    _state.heartbeat.start()


def _heartbeat(lock: Any, period: float) -> None:
    while not _state.stop.wait(max(period, 0.2)):
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
    lease_duration: float = LEASE_DURATION,
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
    lease_duration: float = LEASE_DURATION,
    rollback_on_signal: bool = True,
    configuration: Configuration = None,
    secrets: Secrets = None,
    **_: Any,
) -> None:
    """Install the signal handlers and take the run lock; refuse to start if another run holds it."""
    _install_handlers()
    if lock:
        try:
            _take_lock(float(ttl), context or {}, configuration, secrets, float(lease_duration))
        except LockHeld as held:
            _state.refused = (
                f"Another chaosstream experiment already runs against this StreamSpace target: the run lock is "
                f"{held}; refusing to start."
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
    lease_duration: float = LEASE_DURATION,
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
