"""The `chaosstream` command: the local sandbox, verdicts, reports and clean-up."""

import os
import shlex
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import click

from chaosstream import __version__
from chaosstream.journal.history import history_command
from chaosstream.journal.report import report_command
from chaosstream.journal.verdict import verdict_command

__all__ = ["main", "run"]

# `chaosstream verdict` uses exit codes 0-5 as a CI contract; Click's own usage errors would exit 2
# ("steady state not met before the method"), so they exit 64 (EX_USAGE) instead.
USAGE_ERROR = 64


@click.group()
@click.version_option(__version__, prog_name="chaosstream")
def main() -> None:
    """Chaos engineering for StreamSpace: sandbox, verdict, report, history and heal."""


# -- sandbox ---------------------------------------------------------------------------------------------
@main.group()
def sandbox() -> None:
    """A local StreamSpace stand-in: PostgreSQL, the API, a Kubernetes emulator and agent processes."""


def _state_option(func):  # type: ignore[no-untyped-def]
    return click.option(
        "--state-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Where the sandbox keeps its files (default: $STREAMSPACE_SANDBOX_STATE or /tmp/chaosstream-sandbox-UID).",
    )(func)


def _choice(flag: str, choices: List[str], help_text: str):  # type: ignore[no-untyped-def]
    """A choice option whose default is its first choice."""
    return click.option(
        flag, type=click.Choice(choices), default=choices[0], show_default=True, help=help_text
    )


# What `sandbox up` and `sandbox run` both take; the sandbox gets every one of them (see _start_sandbox).
_START_OPTIONS = [
    click.option(
        "--agents", type=click.IntRange(1, 20), default=1, show_default=True, help="Number of agents."
    ),
    click.option("--fault", "faults", multiple=True, help="Switch on a StreamSpace defect (repeatable)."),
    click.option(
        "--agent-replicas",
        type=click.IntRange(1, 20),
        default=1,
        show_default=True,
        help="Replicas of each agent Deployment (pods share its labels; ids become per pod).",
    ),
    click.option(
        "--api-replicas",
        type=click.IntRange(0, 10),
        default=0,
        help="Replicas of the API Deployment (default 0: the chart's 2).",
    ),
    click.option(
        "--storage-classes",
        default="standard",
        show_default=True,
        help="The cluster's StorageClasses, comma-separated, the first the default ('gp2' is EKS-like: "
        "no 'standard' for persistent homes).",
    ),
    click.option(
        "--session-namespace",
        default="",
        help="Where the agents put sessions (the chart's k8sAgent.config.sessionNamespace; default: "
        "their own namespace).",
    ),
    _choice(
        "--profile",
        ["intended", "as-built"],
        "intended: as StreamSpace's test plans promise; as-built: as the v2 code behaves.",
    ),
    click.option(
        "--clusters",
        type=click.IntRange(1, 3),
        default=1,
        show_default=True,
        help="Emulated clusters whose agents dial the control plane (kube contexts sandbox, sandbox-2…).",
    ),
    click.option(
        "--tenants/--no-tenants",
        default=True,
        show_default=True,
        help="Background tenants: other users' sessions and never-pruned commands on neighbour agents.",
    ),
    _choice("--timers", ["fast", "real"], "fast: StreamSpace's real timers and objectives divided by 10."),
    click.option("--db-dsn", default=None, help="Use this PostgreSQL instead of an embedded one."),
    click.option("--port", type=click.IntRange(0, 65535), default=0, help="API port (0: a free one)."),
    _choice(
        "--network",
        ["auto", "on", "off"],
        "Per-pod network namespaces (root only; 'auto' uses them when possible).",
    ),
    _choice(
        "--cni",
        ["enforcing", "ignore-endport", "new-connections-only", "none"],
        "How the sandbox's CNI enforces NetworkPolicies.",
    ),
    _choice(
        "--service-route",
        ["kube-proxy", "socket-lb"],
        "Where the Service DNAT happens: on the node (the pod sees ClusterIP:port) or at connect() "
        "(socket-LB dataplanes: the pod sees endpoint:targetPort).",
    ),
    click.option(
        "--image-pull",
        default="fast",
        show_default=True,
        help="Ephemeral-container image pulls: fast, slow:SECONDS, or backoff:SECONDS (ErrImagePull and "
        "back-off, then success).",
    ),
    _choice(
        "--pod-security",
        ["privileged", "baseline", "restricted"],
        "The namespace's Pod Security level, enforced on pods and ephemeral containers.",
    ),
]

# start_daemon's own parameters; every other start option reaches the sandbox through `extra`.
_DAEMON_PARAMS = (
    "agents",
    "faults",
    "timers",
    "db_dsn",
    "port",
    "network",
    "profile",
    "agent_replicas",
    "tenants",
)


def _start_options(func):  # type: ignore[no-untyped-def]
    for option in reversed(_START_OPTIONS):
        func = option(func)
    return func


def _check_faults(faults: Tuple[str, ...]) -> None:
    from chaosstream.sandbox.faults import validate_faults

    try:
        validate_faults(faults)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


def _start_sandbox(state: Path, options: Dict[str, Any], parent_pid: Optional[int] = None) -> Dict[str, str]:
    """Start the sandbox daemon with the start options; a failure to start is one ClickException."""
    from chaosstream.sandbox.daemon.client import SandboxStartError, start_daemon

    known = {k: options[k] for k in _DAEMON_PARAMS}
    extra = {k: v for k, v in options.items() if k not in _DAEMON_PARAMS}
    try:
        return start_daemon(state, parent_pid=parent_pid, extra=extra, **known)
    except SandboxStartError as exc:
        raise click.ClickException(str(exc)) from None


@sandbox.command("up")
@_start_options
@_state_option
def sandbox_up(state_dir: Optional[Path], **options: Any) -> None:
    """Start the sandbox in the background and print how to use it."""
    from chaosstream.sandbox.daemon.client import default_state_dir

    _check_faults(options["faults"])
    state = state_dir or default_state_dir()
    env = _start_sandbox(state, options)
    env_file = state / "sandbox.env"
    click.echo(
        f"StreamSpace sandbox is up: API {env['STREAMSPACE_API_URL']}, {options['agents']} agent(s), "
        f"timers {options['timers']}, profile {options['profile']}."
    )
    click.echo(f"Environment file: {env_file}")
    for number in range(2, options["clusters"] + 1):
        click.echo(
            f"Cluster {number} (kube context sandbox-{number}, its agents only): {state / f'sandbox-{number}.env'}"
        )
    click.echo(f"Use it:  set -a; . {env_file}; set +a; chaos run experiments/agent-disconnect.json")
    click.echo("Stop it: chaosstream sandbox down")


@sandbox.command("down")
@_state_option
def sandbox_down(state_dir: Optional[Path]) -> None:
    """Stop the sandbox and remove everything it created."""
    from chaosstream.sandbox.daemon.client import default_state_dir, stop_daemon

    state = state_dir or default_state_dir()
    was_running = stop_daemon(state)
    click.echo("Sandbox stopped." if was_running else "No sandbox was running; leftovers (if any) removed.")


@sandbox.command("status")
@_state_option
def sandbox_status(state_dir: Optional[Path]) -> None:
    """Agents, sessions, pending commands and pods of the running sandbox."""
    from chaosstream.sandbox.daemon.client import daemon_pid, default_state_dir, read_env
    from chaosstream.sandbox.status import render_status

    state = state_dir or default_state_dir()
    if not daemon_pid(state) or not (state / "sandbox.env").exists():
        raise click.ClickException(
            f"No sandbox runs with state dir {state}: start one with 'chaosstream sandbox up'."
        )
    click.echo(render_status(read_env(state)))


@sandbox.command("restart")
@click.argument("component", type=click.Choice(["postgres", "kube", "api"]))
@_state_option
def sandbox_restart(component: str, state_dir: Optional[Path]) -> None:
    """Restart one component of the running sandbox in place (same port, same data).

    postgres: the embedded PostgreSQL; kube: the Kubernetes emulator's API server (objects and pods are
    kept); api: the StreamSpace control plane (agents reconnect).
    """
    from chaosstream.sandbox.daemon.client import SandboxNotRunning, default_state_dir, restart_component

    state = state_dir or default_state_dir()
    try:
        click.echo(restart_component(state, component))
    except SandboxNotRunning as exc:
        raise click.ClickException(str(exc)) from None


@sandbox.command("trigger-cronjob")
@click.argument("name")
@click.option("--namespace", default="streamspace", show_default=True)
@click.option("--wait", "wait_s", type=click.FloatRange(0, 3600), default=0, help="Wait this long for the Job to finish, then print its pod's log and exit with its container's exit code.")  # fmt: skip
@_state_option
def sandbox_trigger_cronjob(name: str, namespace: str, wait_s: float, state_dir: Optional[Path]) -> None:
    """Run a CronJob now (as `kubectl create job --from=cronjob/NAME`): the sandbox runs its pod."""
    import secrets as _secrets
    import time

    from kubernetes import client

    from chaosstream.clients.kube import Cluster, KubeError
    from chaosstream.sandbox.daemon.client import daemon_pid, default_state_dir, read_env

    state = state_dir or default_state_dir()
    if not daemon_pid(state) or not (state / "sandbox.env").exists():
        raise click.ClickException(
            f"No sandbox runs with state dir {state}: start one with 'chaosstream sandbox up'."
        )
    cluster = Cluster({"KUBECONFIG": read_env(state)["KUBECONFIG"]}, timeout=30)
    batch = cluster.batch
    try:
        cron = batch.read_namespaced_cron_job(name, namespace)
    except KubeError as exc:
        raise click.ClickException(str(exc)) from None
    template = cron.spec.job_template
    job_name = f"{name}-manual-{_secrets.token_hex(3)[:5]}"
    meta = client.V1ObjectMeta(
        name=job_name,
        namespace=namespace,
        labels=(template.metadata.labels if template.metadata else None),
        annotations={"cronjob.kubernetes.io/instantiate": "manual"},
        owner_references=[
            client.V1OwnerReference(
                api_version="batch/v1", kind="CronJob", name=name, uid=cron.metadata.uid, controller=True
            )
        ],  # fmt: skip
    )
    batch.create_namespaced_job(
        namespace, client.V1Job(api_version="batch/v1", kind="Job", metadata=meta, spec=template.spec)
    )
    click.echo(f"job.batch/{job_name} created")
    if not wait_s:
        return
    deadline = time.monotonic() + wait_s
    core = cluster.core
    while time.monotonic() < deadline:
        job = batch.read_namespaced_job(job_name, namespace)
        done = [
            c
            for c in (job.status.conditions or [])
            if c.type in ("Complete", "Failed") and c.status == "True"
        ]
        if done:
            break
        time.sleep(0.5)
    else:
        raise click.ClickException(f"Job {namespace}/{job_name} did not finish within {wait_s:g}s.")
    pods = core.list_namespaced_pod(namespace, label_selector=f"job-name={job_name}").items
    code = 0 if done[0].type == "Complete" else 1
    for pod in sorted(pods, key=lambda p: p.metadata.creation_timestamp):
        click.echo(core.read_namespaced_pod_log(pod.metadata.name, namespace), nl=False)
        for cs in pod.status.container_statuses or []:
            if cs.state and cs.state.terminated is not None:
                code = cs.state.terminated.exit_code
    click.echo(f"job.batch/{job_name}: {done[0].type}{' (' + done[0].reason + ')' if done[0].reason else ''}")
    sys.exit(code)


@sandbox.command("faults")
def sandbox_faults() -> None:
    """List the StreamSpace defects the sandbox can reproduce."""
    from chaosstream.sandbox.faults import FAULTS

    width = max(len(name) for name in FAULTS)
    for name, text in FAULTS.items():
        click.echo(f"{name:<{width}}  {text}")


@sandbox.command("run", context_settings={"ignore_unknown_options": True})
@_start_options
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def sandbox_run(command: Tuple[str, ...], **options: Any) -> None:
    """Start a throw-away sandbox, run COMMAND with its environment, then remove the sandbox.

    Example: chaosstream sandbox run -- chaos run experiments/agent-disconnect.json
    """
    from chaosstream.sandbox.daemon.client import stop_daemon

    _check_faults(options["faults"])
    state = Path(tempfile.mkdtemp(prefix="chaosstream-sandbox-"))
    code = 1
    try:
        env = _start_sandbox(state, options, parent_pid=os.getpid())
        code = _run_child(list(command), env)
    finally:
        stop_daemon(state)
        import shutil

        shutil.rmtree(state, ignore_errors=True)
    sys.exit(code)


def _run_child(command: List[str], extra_env: dict) -> int:
    """Run the command in the foreground; SIGTERM is forwarded, Ctrl-C reaches it through the terminal."""
    env = dict(os.environ, **extra_env)
    try:
        child = subprocess.Popen(command, env=env)
    except FileNotFoundError:
        raise click.ClickException(f"Command not found: {shlex.join(command)}") from None

    def forward(signum: int, _frame: object) -> None:
        child.send_signal(signum)

    previous = signal.signal(signal.SIGTERM, forward)
    previous_int = signal.signal(signal.SIGINT, lambda *_: None)  # the child gets Ctrl-C itself
    try:
        return child.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)


# -- journal tooling and clean-up ---------------------------------------------------------------------------
main.add_command(verdict_command, "verdict")
main.add_command(report_command, "report")
main.add_command(history_command, "history")


def _context_option(func):  # type: ignore[no-untyped-def]
    return click.option(
        "--context",
        default=None,
        help="Kube context of the cluster to act on (default: KUBERNETES_CONTEXT, else the kubeconfig's current "
        "context); faults and the run lock live in each cluster, so heal each context a run touched.",
    )(func)


@main.command("heal")
@click.option("--namespace", default=None, help="Namespace (default: STREAMSPACE_NAMESPACE or streamspace).")
@_context_option
@click.option(
    "--expired-only",
    is_flag=True,
    help="Only faults past their chaosstream.io/expires-at (the in-cluster reaper's mode; safe while a run is live).",
)
@click.option(
    "--force", is_flag=True, help="Heal even while a live run holds the run lock (removes its faults too)."
)
@click.option(
    "--retry-for",
    type=click.FloatRange(0, 3600),
    default=None,
    help="Keep retrying this many seconds while Kubernetes is unreachable or answers 5xx "
    "(default: 45 with --expired-only, else 10).",
)
def heal(
    namespace: Optional[str],
    context: Optional[str],
    expired_only: bool,
    force: bool,
    retry_for: Optional[float],
) -> None:
    """Remove every fault chaosstream left behind (partitions, network policies, scaled-down agents, and
    the sessions a run recorded: terminated through the StreamSpace API with STREAMSPACE_TOKEN or
    STREAMSPACE_USERNAME/PASSWORD; without them the Kubernetes faults are still healed, the session records
    are left and named, and heal exits 1). Each line names the run that made the fault.

    Refuses while a live run holds the run lock (Lease chaosstream-run-lock), because the faults are that
    run's own; --force heals anyway. With --expired-only only faults past their expiry are removed, which is
    safe at any time: that is what the reaper CronJob (deploy/kubernetes/reaper-cronjob.yaml) runs every minute.
    """
    import time

    from chaoslib.exceptions import ActivityFailed

    from chaosstream.clients.kube import Cluster, KubeError
    from chaosstream.controls.lock import read_holder, remove_command
    from chaosstream.faults import ledger
    from chaosstream.settings import resolve_settings

    retry_for = (45.0 if expired_only else 10.0) if retry_for is None else retry_for
    named = (
        context or os.environ.get("KUBERNETES_CONTEXT") or ""
    )  # an explicit context is named in the output
    deadline = time.monotonic() + retry_for
    delay = 1.0
    while True:
        try:
            settings = resolve_settings({"streamspace_namespace": namespace} if namespace else None, None)
            ns = settings.namespace
            cluster = Cluster({"KUBERNETES_CONTEXT": context} if context else None)
            holder = read_holder(cluster, ns, named)
            spare = None
            if expired_only:
                # expired faults go whoever made them; a live run's sessions stay (they are in use)
                spare = holder["holder"] if holder and holder["live"] else None
            elif holder and holder["live"]:
                whose = (
                    f"{holder['where']} is held by {holder['holder']} (experiment {holder['experiment']!r}, "
                    f"renewed until {holder['expires_at']})"
                )
                if not force:
                    raise click.ClickException(
                        f"A live chaosstream run holds the run lock: {whose}; its faults are its own and it "
                        "heals them itself. Wait for it to finish, heal only expired faults with --expired-only, "
                        f"or remove that run's faults anyway with --force (then {remove_command(ns)} to free the lock)."
                    )
                click.echo(f"--force: removing the faults of the live run: {whose}.")
            elif holder and not expired_only:
                click.echo(
                    f"Removing the faults left by {holder['holder']} (experiment {holder['experiment']!r}), "
                    f"which stopped renewing {holder['where']} at {holder['expires_at']}."
                )
            healed = ledger.heal(
                cluster, ns, None, expired_only=expired_only, settings=settings, spare_owner=spare
            )
            break
        except ActivityFailed as exc:  # KubeError included; undo is idempotent, so a retry is safe
            status = getattr(exc, "status", None)
            transient = not isinstance(exc, KubeError) or status is None or status >= 500 or status == 429
            if not transient or time.monotonic() + delay > deadline:
                raise click.ClickException(str(exc)) from None
            click.echo(f"Heal incomplete ({str(exc).splitlines()[0]}); retrying in {delay:g}s", err=True)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
    where = f" in kube context {named}" if named else ""
    if not healed and not healed.left:
        click.echo(
            f"Nothing to heal: no expired chaosstream fault remains{where}."
            if expired_only
            else f"Nothing to heal: no chaosstream fault remains{where}."
        )
    for item in healed:
        click.echo(f"healed: {item}{where}")
    if healed.refused:
        raise click.ClickException(
            f"Left {len(healed.refused)} recorded session(s) running ({'; '.join(healed.refused)}): a run records "
            "its sessions before creating them, so an older one is not a run's own; the records no longer name "
            "them; terminate them by hand if they are yours."
        )
    if healed.left:
        raise click.ClickException(
            f"Left {len(healed.left)} session record(s) untouched ({'; '.join(healed.left)}) because heal has "
            "no StreamSpace credentials to terminate them: set STREAMSPACE_TOKEN, or STREAMSPACE_USERNAME and "
            "STREAMSPACE_PASSWORD, and run chaosstream heal again."
        )


@main.command("check")
@click.argument("experiment", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--no-lock", is_flag=True, help="The run will not take the run lock (do not check Lease access)."
)
@_context_option
def check(experiment: Optional[Path], no_lock: bool, context: Optional[str]) -> None:
    """Preflight before a game day or a scheduled run: is the target ready for EXPERIMENT?

    API reachable, login, admin role, token lifetime; Kubernetes access and, through
    SelfSubjectAccessReview, every call the experiment makes; the namespace's Pod Security level against
    the partition method; the agent Deployment (selector, AGENT_ID pattern, CONTROL_PLANE_URL);
    PostgreSQL (read-only role, timezone). One line per check (ok / warn / fail) with what to do.
    Exits 6 (as `chaosstream verdict` does for a broken setup) when a check fails, 0 otherwise.
    """
    import json

    from chaosstream.controls.preflight import FAIL, run_checks

    doc = None
    if experiment is not None:
        try:
            doc = json.loads(experiment.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise click.UsageError(f"Cannot read the experiment {experiment}: {exc}.") from None
        if not isinstance(doc, dict):
            raise click.UsageError(f"{experiment} is not a Chaos Toolkit experiment (not a JSON object).")
    checks = run_checks(doc, lock=not no_lock, kube={"KUBERNETES_CONTEXT": context} if context else None)
    for item in checks:
        click.echo(item.line())
    failed = [c for c in checks if c.status == FAIL]
    click.echo(
        f"preflight: {len(failed)} check(s) failed - fix them before running."
        if failed
        else "preflight: ready."
    )
    sys.exit(6 if failed else 0)


@main.command("save-result")
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--verdict-file",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The output of `chaosstream verdict` (its first line names the code).",
)
@click.option("--code", type=int, required=True, help="The exit code of `chaosstream verdict`.")
@click.option("--experiment", default="", help="The experiment's name, for the annotation.")
@click.option("--namespace", default=None, help="Namespace (default: STREAMSPACE_NAMESPACE or streamspace).")
def save_result_command(
    files: Tuple[Path, ...], verdict_file: Path, code: int, experiment: str, namespace: Optional[str]
) -> None:
    """Keep a scheduled run's verdict, JUnit, report and journal in a ConfigMap after its Job ends.

    One ConfigMap per run, chaosstream-result-1 .. -5 (the oldest is reused). Read them with
    kubectl get cm -n NS -l app.kubernetes.io/name=chaosstream-result -L chaosstream.io/verdict
    """
    from chaoslib.exceptions import ActivityFailed

    from chaosstream.clients.kube import Cluster
    from chaosstream.journal.results import save_result
    from chaosstream.settings import resolve_settings

    settings = resolve_settings({"streamspace_namespace": namespace} if namespace else None, None)
    text = verdict_file.read_text(encoding="utf-8", errors="replace") if verdict_file.exists() else ""
    try:
        name = save_result(
            Cluster(None), settings.namespace, list(files), text, code, experiment, os.environ.get("HOSTNAME")
        )
    except ActivityFailed as exc:
        raise click.ClickException(f"Cannot save the result: {exc}") from None
    click.echo(f"result saved: kubectl get cm -n {settings.namespace} {name} -o yaml")


def run() -> None:
    """Console-script entry point: `main` with usage errors mapped to exit code 64."""
    try:
        code = main.main(standalone_mode=False)
    except click.UsageError as exc:
        exc.show()
        sys.exit(USAGE_ERROR)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("Aborted!", err=True)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
