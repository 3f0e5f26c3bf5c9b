"""The `chaosstream` command: the local sandbox, verdicts, reports and clean-up."""

import os
import shlex
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import List, Optional, Tuple

import click

from chaosstream import __version__
from chaosstream.journal.report import report_command
from chaosstream.journal.verdict import verdict_command

__all__ = ["main", "run"]

# `chaosstream verdict` uses exit codes 0-5 as a CI contract; Click's own usage errors would exit 2
# ("steady state not met before the method"), so they exit 64 (EX_USAGE) instead.
USAGE_ERROR = 64


@click.group()
@click.version_option(__version__, prog_name="chaosstream")
def main() -> None:
    """Chaos engineering for StreamSpace: sandbox, verdict, report and heal."""


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


def _start_options(func):  # type: ignore[no-untyped-def]
    for option in reversed(
        [
            click.option(
                "--agents", type=click.IntRange(1, 20), default=1, show_default=True, help="Number of agents."
            ),
            click.option(
                "--fault", "faults", multiple=True, help="Switch on a StreamSpace defect (repeatable)."
            ),
            click.option("--timers", type=click.Choice(["fast", "real"]), default="fast", show_default=True),
            click.option("--db-dsn", default=None, help="Use this PostgreSQL instead of an embedded one."),
            click.option(
                "--port", type=click.IntRange(0, 65535), default=0, help="API port (0: a free one)."
            ),
            click.option(
                "--network",
                type=click.Choice(["auto", "on", "off"]),
                default="auto",
                show_default=True,
                help="Per-pod network namespaces (root only; 'auto' uses them when possible).",
            ),
            click.option(
                "--agent-replicas",
                type=click.IntRange(1, 20),
                default=1,
                show_default=True,
                help="Replicas of each agent Deployment (the chart's shape: N pods sharing their labels).",
            ),
            click.option(
                "--cni",
                type=click.Choice(["enforcing", "ignore-endport", "new-connections-only", "none"]),
                default="enforcing",
                show_default=True,
                help="How the sandbox's CNI enforces NetworkPolicies.",
            ),
            click.option(
                "--service-route",
                type=click.Choice(["kube-proxy", "socket-lb"]),
                default="kube-proxy",
                show_default=True,
                help="Where the Service DNAT happens: on the node (the pod sees ClusterIP:port) or at connect() "
                "(socket-LB dataplanes: the pod sees endpoint:targetPort).",
            ),
            click.option(
                "--image-pull",
                default="fast",
                show_default=True,
                help="Ephemeral-container image pulls: fast, slow:SECONDS, or backoff:SECONDS (ErrImagePull and "
                "back-off, then success).",
            ),
            click.option(
                "--pod-security",
                type=click.Choice(["privileged", "baseline", "restricted"]),
                default="privileged",
                show_default=True,
                help="The namespace's Pod Security level, enforced on pods and ephemeral containers.",
            ),
        ]
    ):
        func = option(func)
    return func


def _check_faults(faults: Tuple[str, ...]) -> None:
    from chaosstream.sandbox.faults import validate_faults

    try:
        validate_faults(faults)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


@sandbox.command("up")
@_start_options
@_state_option
def sandbox_up(
    agents: int,
    faults: Tuple[str, ...],
    timers: str,
    db_dsn: Optional[str],
    port: int,
    network: str,
    agent_replicas: int,
    cni: str,
    service_route: str,
    image_pull: str,
    pod_security: str,
    state_dir: Optional[Path],
) -> None:
    """Start the sandbox in the background and print how to use it."""
    from chaosstream.sandbox.daemon.client import SandboxStartError, default_state_dir, start_daemon

    _check_faults(faults)
    state = state_dir or default_state_dir()
    try:
        env = start_daemon(
            state,
            agents,
            faults,
            timers,
            db_dsn,
            port,
            network,
            extra={
                "agent_replicas": agent_replicas,
                "cni": cni,
                "service_route": service_route,
                "image_pull": image_pull,
                "pod_security": pod_security,
            },
        )
    except SandboxStartError as exc:
        raise click.ClickException(str(exc)) from None
    env_file = state / "sandbox.env"
    click.echo(
        f"StreamSpace sandbox is up: API {env['STREAMSPACE_API_URL']}, {agents} agent(s), timers {timers}."
    )
    click.echo(f"Environment file: {env_file}")
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
def sandbox_run(
    agents: int,
    faults: Tuple[str, ...],
    timers: str,
    db_dsn: Optional[str],
    port: int,
    network: str,
    agent_replicas: int,
    cni: str,
    service_route: str,
    image_pull: str,
    pod_security: str,
    command: Tuple[str, ...],
) -> None:
    """Start a throw-away sandbox, run COMMAND with its environment, then remove the sandbox.

    Example: chaosstream sandbox run -- chaos run experiments/agent-disconnect.json
    """
    from chaosstream.sandbox.daemon.client import SandboxStartError, start_daemon, stop_daemon

    _check_faults(faults)
    state = Path(tempfile.mkdtemp(prefix="chaosstream-sandbox-"))
    code = 1
    try:
        try:
            env = start_daemon(
                state,
                agents,
                faults,
                timers,
                db_dsn,
                port,
                network,
                parent_pid=os.getpid(),
                extra={
                    "agent_replicas": agent_replicas,
                    "cni": cni,
                    "service_route": service_route,
                    "image_pull": image_pull,
                    "pod_security": pod_security,
                },
            )
        except SandboxStartError as exc:
            raise click.ClickException(str(exc)) from None
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


@main.command("heal")
@click.option("--namespace", default=None, help="Namespace (default: STREAMSPACE_NAMESPACE or streamspace).")
def heal(namespace: Optional[str]) -> None:
    """Remove every fault chaosstream left behind (partitions, network policies, scaled-down agents)."""
    from chaoslib.exceptions import ActivityFailed

    from chaosstream.actions import heal_all

    configuration = {"streamspace_namespace": namespace} if namespace else None
    try:
        result = heal_all(configuration=configuration)
    except ActivityFailed as exc:
        raise click.ClickException(str(exc)) from None
    healed = result.get("healed", [])
    if not healed:
        click.echo("Nothing to heal: no chaosstream fault remains.")
    for item in healed:
        click.echo(f"healed: {item}")


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
