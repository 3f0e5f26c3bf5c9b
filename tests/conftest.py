"""Shared fixtures: a real sandbox (embedded PostgreSQL, control plane, Kubernetes emulator, agent
processes) started through the same code path as `chaosstream sandbox up`. Shared code lives in
tests/helpers (a conftest is not a module to import)."""

import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterator, List

import pytest
from helpers.sandbox import RunningSandbox


@pytest.fixture
def sandbox_factory() -> Iterator[Callable[..., RunningSandbox]]:
    """Start sandboxes with options (agents, faults, timers); all are stopped after the test."""
    from chaosstream.sandbox.daemon.client import start_daemon, stop_daemon

    started: List[Path] = []

    def start(
        agents: int = 1,
        faults: tuple = (),
        timers: str = "fast",
        network: str = "auto",
        profile: str = "intended",
        agent_replicas: int = 1,
        tenants: bool = False,
        **extra: object,
    ) -> RunningSandbox:
        """`extra`: cni, service_route, image_pull, pod_security (as the sandbox's command-line flags).
        Background tenants are off unless asked for: most tests assert exact agent sets; the experiments run
        with tenants in the sensitivity matrix (bench/matrix.py) and the as-built table (bench/asbuilt.py)."""
        state = Path(tempfile.mkdtemp(prefix="css-test-"))
        started.append(state)
        env = start_daemon(
            state,
            agents=agents,
            faults=faults,
            timers=timers,
            network=network,
            parent_pid=os.getpid(),
            profile=profile,
            agent_replicas=agent_replicas,
            extra=extra,
            tenants=tenants,
        )
        return RunningSandbox(state, env)

    yield start
    for state in started:
        stop_daemon(state)
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="module")
def shared_sandbox() -> Iterator[RunningSandbox]:
    """One default sandbox per test module, for tests that leave it as they found it."""
    from chaosstream.sandbox.daemon.client import start_daemon, stop_daemon

    state = Path(tempfile.mkdtemp(prefix="css-test-"))
    # the catalog tests check exact single-cluster answers (e.g. a 503 with the only agent down): no
    # neighbour agents here; tests/sandbox/test_probes_busy_install.py and the experiments cover tenants
    env = start_daemon(state, parent_pid=os.getpid(), tenants=False)
    try:
        yield RunningSandbox(state, env)
    finally:
        stop_daemon(state)
        shutil.rmtree(state, ignore_errors=True)
