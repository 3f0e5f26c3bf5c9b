"""`chaosstream sandbox` as a user types it: up/status/down, faults, clear errors, recovery after a crash."""

import os
import signal
import socket
import subprocess
import time

from helpers.chaos import CHAOSSTREAM
from helpers.procs import pid_alive

from chaosstream.sandbox.faults import FAULTS


def cli(*args, env=None, timeout=120):
    return subprocess.run(
        [CHAOSSTREAM, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ, **(env or {})),
    )


def test_faults_lists_every_fault_with_a_line():
    proc = cli("sandbox", "faults")
    assert proc.returncode == 0
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == len(FAULTS)
    for name in FAULTS:
        assert any(line.startswith(name) for line in lines)


def test_unknown_fault_is_one_clear_sentence(tmp_path):
    proc = cli("sandbox", "up", "--fault", "no-such-fault", "--state-dir", str(tmp_path / "s"))
    assert proc.returncode != 0
    assert "unknown fault(s) no-such-fault" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_port_in_use_is_refused_clearly(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        proc = cli("sandbox", "up", "--port", str(port), "--state-dir", str(tmp_path / "s"))
    assert proc.returncode != 0
    assert f"Port {port} is already in use" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "s" / "sandbox.env").exists()


def test_bad_dsn_is_refused_clearly(tmp_path):
    proc = cli(
        "sandbox",
        "up",
        "--db-dsn",
        "postgresql://nobody@127.0.0.1:1/none",
        "--state-dir",
        str(tmp_path / "s"),
    )
    assert proc.returncode != 0
    assert "Cannot connect to --db-dsn" in proc.stderr
    assert "Traceback" not in proc.stderr


def _netns_of(instance_prefix):
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(instance_prefix)]


def test_up_status_down_and_a_second_up_after_a_crash(tmp_path):
    state = tmp_path / "state"
    up = cli("sandbox", "up", "--state-dir", str(state))
    assert up.returncode == 0, up.stderr
    assert "Environment file:" in up.stdout
    try:
        status = cli("sandbox", "status", "--state-dir", str(state))
        assert status.returncode == 0, status.stderr
        assert "k8s-sandbox-1" in status.stdout and "online" in status.stdout
        assert "streamspace-k8s-agent" in status.stdout

        # Crash the sandbox process: its agents, PostgreSQL and namespaces are left behind.
        daemon = int((state / "daemon.pid").read_text())
        agent_pids = [int(p.read_text()) for p in (state / "pids").glob("*.pid")]
        assert agent_pids
        os.kill(daemon, signal.SIGKILL)
        time.sleep(0.5)

        again = cli("sandbox", "up", "--state-dir", str(state))
        assert again.returncode == 0, again.stderr
        still_running = [pid for pid in agent_pids if pid_alive(pid)]  # a zombie counts as gone
        assert not still_running, f"agents of the crashed sandbox still run: {still_running}"
    finally:
        down = cli("sandbox", "down", "--state-dir", str(state))
    assert down.returncode == 0
    assert not (state / "sandbox.env").exists()
    assert cli("sandbox", "status", "--state-dir", str(state)).returncode != 0
