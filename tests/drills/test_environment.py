"""Faults of the environment while activities run: the API down or slow, PostgreSQL, the Kubernetes API
and the control plane restarted in the middle (`chaosstream sandbox restart`). Probes either recover
within their timeout or fail with one clear sentence; a fault action interrupted by these faults stays
known to its rollback."""

import asyncio
import concurrent.futures
import os
import threading
import time
from typing import Any, Callable, Iterator, Tuple

import pytest
from chaoslib.exceptions import ActivityFailed
from helpers.net import free_port
from helpers.sentences import assert_one_sentence
from helpers.waits import wait_for

from chaosstream import actions, probes
from drills._drill import clean, heal_output, leftovers, partition_ids, restart

pytestmark = pytest.mark.slow
ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="partitions need root (pod network namespaces)")


class SlowProxy:
    """A TCP proxy on 127.0.0.1 that holds every chunk the client sends (each HTTP request) for `delay`
    seconds before passing it to the API; answers flow back at once."""

    def __init__(self, upstream_port: int, delay: float) -> None:
        self.upstream_port, self.delay = upstream_port, delay
        self.port = 0
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    async def _pipe(self, reader: Any, writer: Any, delay: float) -> None:
        try:
            while data := await reader.read(65536):
                if delay:
                    await asyncio.sleep(delay)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def _handle(self, client_r: Any, client_w: Any) -> None:
        up_r, up_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        await asyncio.gather(self._pipe(client_r, up_w, self.delay), self._pipe(up_r, client_w, 0))

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self.loop.run_forever()

    def __enter__(self) -> "SlowProxy":
        self._thread.start()
        self._ready.wait(5)
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)


@pytest.fixture
def sandbox(sandbox_factory) -> Iterator[Any]:
    yield sandbox_factory()


def _call(sandbox: Any, func: Callable[..., Any], cfg: dict = None, **kwargs: Any) -> Tuple[Any, float]:
    started = time.monotonic()
    result = func(**kwargs, configuration=sandbox.configuration(**(cfg or {})), secrets=sandbox.secrets())
    return result, time.monotonic() - started


def _fails(sandbox: Any, func: Callable[..., Any], cfg: dict = None, **kwargs: Any) -> Tuple[str, float]:
    started = time.monotonic()
    with pytest.raises(ActivityFailed) as info:
        func(**kwargs, configuration=sandbox.configuration(**(cfg or {})), secrets=sandbox.secrets())
    message = str(info.value)
    assert_one_sentence(message, secrets=[sandbox.env["STREAMSPACE_PASSWORD"]])
    return message, time.monotonic() - started


def test_api_down_probes_fail_with_one_sentence_within_their_timeout(sandbox) -> None:
    cfg = {"streamspace_api_url": f"http://127.0.0.1:{free_port()}"}
    for func, kwargs, budget in (
        (probes.api_health, {"timeout": 2}, 4),
        (probes.agent_status, {"timeout": 2}, 4),
        (probes.wait_for_agent_status, {"timeout": 2}, 4),
        (probes.agents_online, {"timeout": 2}, 4),
    ):
        message, elapsed = _fails(sandbox, func, cfg, **kwargs)
        assert "reach" in message.lower(), message
        assert elapsed < budget, f"{func.__name__} took {elapsed:.1f}s: {message}"


def test_api_slow_probes_succeed_within_timeout_or_fail_clearly(sandbox) -> None:
    upstream = int(sandbox.env["STREAMSPACE_API_URL"].rsplit(":", 1)[1])
    with SlowProxy(upstream, 2.0) as proxy:
        cfg = {"streamspace_api_url": f"http://127.0.0.1:{proxy.port}"}
        # a generous timeout: the probe waits the 2 s (login + list) and measures
        result, elapsed = _call(sandbox, probes.agent_status, cfg, timeout=15)
        assert result["status"] == "online", result
        assert 2 <= elapsed < 15, elapsed
        health, _ = _call(sandbox, probes.api_health, cfg, max_latency_ms=1000, timeout=10)
        assert health["healthy"] is False and health["latency_ms"] >= 1000, health
        # a tight timeout: one sentence, on time (not after the 2 s x requests)
        message, elapsed = _fails(sandbox, probes.agent_status, cfg, timeout=1)
        assert elapsed < 3.5, f"took {elapsed:.1f}s: {message}"


def test_postgres_restart_mid_run(sandbox) -> None:
    """Probes that hit PostgreSQL during the restart fail with one sentence or succeed; afterwards they
    and the control plane work again without anyone restarting them."""
    outcomes = []
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            try:
                _call(sandbox, probes.queued_commands)
                outcomes.append("ok")
            except ActivityFailed as exc:
                assert_one_sentence(str(exc), secrets=[sandbox.env["STREAMSPACE_PASSWORD"]])
                outcomes.append("failed")
            time.sleep(0.02)

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        future = pool.submit(hammer)
        time.sleep(0.3)
        line = restart(sandbox, "postgres")
        time.sleep(0.5)
        stop.set()
        future.result(30)
    assert line.startswith("PostgreSQL restarted on port"), line
    assert outcomes[-1] == "ok" and "ok" in outcomes[:3], outcomes
    result, elapsed = _call(sandbox, probes.wait_for_agent_status, status="online", timeout=15)
    assert result["status"] == "online"
    session, _ = _call(sandbox, actions.create_sessions, count=1)
    assert session, "the control plane could not create a session after the database restart"
    _call(sandbox, actions.terminate_sessions)
    print(f"\npostgres restart: {outcomes.count('failed')} of {len(outcomes)} probe calls failed cleanly")


def test_api_restart_mid_run_agents_reconnect(sandbox) -> None:
    line = restart(sandbox, "api")
    assert line.startswith("control plane restarted"), line
    result, elapsed = _call(sandbox, probes.wait_for_agent_status, status="online", timeout=15)
    assert result["status"] == "online", result
    print(f"\napi restart: agent online again, probe waited {elapsed:.2f}s")


@ROOT_ONLY
def test_kube_restart_after_partition_heal_still_cleans(sandbox) -> None:
    """Partition, restart the Kubernetes API, heal: the record and the rules survive the restart and
    the rollback removes them."""
    result, _ = _call(sandbox, actions.partition_agent, method="ephemeral", duration=60)
    pid = result["partition_id"]
    assert leftovers(sandbox)["iptables"]
    assert restart(sandbox, "kube").startswith("Kubernetes emulator restarted")
    assert pid in partition_ids(sandbox)
    healed, _ = _call(sandbox, actions.heal_agent_partition)
    assert healed["healed"], healed
    assert clean(leftovers(sandbox, pid)), leftovers(sandbox, pid)
    assert heal_output(sandbox).startswith("Nothing to heal")


@ROOT_ONLY
@pytest.mark.parametrize("method", ["ephemeral", "network-policy"])
def test_kube_restart_during_partition_is_never_half_applied(sandbox, method: str) -> None:
    """The Kubernetes API goes away while partition_agent runs: either the partition is complete, or it
    failed with one sentence; in both cases every trace is recorded where heal finds it."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        future = pool.submit(_call, sandbox, actions.partition_agent, method=method, duration=30)
        time.sleep(0.05)
        restart(sandbox, "kube")
        try:
            outcome = f"applied {future.result(60)[0]['partition_id']}"
        except ActivityFailed as exc:
            assert_one_sentence(str(exc), secrets=[sandbox.env["STREAMSPACE_PASSWORD"]])
            outcome = f"failed: {exc}"
    found = leftovers(sandbox)
    if found["iptables"] or found["policies"]:
        assert partition_ids(sandbox), f"a fault without its record: {found} ({outcome})"
    _call(sandbox, actions.heal_all)
    wait_for(lambda: clean(leftovers(sandbox)), 5, "heal after a Kubernetes API restart")
    assert heal_output(sandbox).startswith("Nothing to heal")
    print(f"\nkube restart during {method} partition: {outcome[:120]}")
