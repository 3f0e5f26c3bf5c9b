"""The shell scripts that partition and heal run in containers we cannot debug at 3 a.m.: they must
parse, drop exactly the route (address and port, both directions, never a bare port), start nothing
after their deadline, and healing must really remove the rules and stop the timer (run here in a scratch
network namespace when root)."""

import os
import shutil
import subprocess
import time
import uuid

import pytest

from chaosstream.faults.scripts import (
    ephemeral_script,
    exec_script,
    heal_script,
    inject_script,
    probe_script,
)

ROUTE = [("10.96.0.10", 8000), ("10.244.1.7", 8080)]
SOON = int(time.time()) + 3600


@pytest.mark.parametrize(
    "script",
    [
        exec_script(ROUTE, "chaosstream-t1", SOON),
        ephemeral_script(ROUTE + [("fd00::10", 8000)], "chaosstream-t2", SOON),
        heal_script("chaosstream-"),
        inject_script([("10.0.0.1", 1), ("10.0.0.2", 65535)], "chaosstream-t3"),
        probe_script("chaosstream-t4", ROUTE, [("10.96.0.1", 443)], 1.0),
    ],
    # Stable ids: the scripts embed a deadline, and xdist workers must collect the same names.
    ids=["exec", "ephemeral", "heal", "inject", "probe"],
)
def test_scripts_parse(script):
    proc = subprocess.run(["sh", "-n", "-c", script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_no_rule_without_a_destination():
    with pytest.raises(ValueError, match="bare port"):
        inject_script([8000], "chaosstream-t5")
    with pytest.raises(ValueError):
        inject_script([("streamspace-api", 8000)], "chaosstream-t5")
    script = inject_script([("10.96.0.10", 8000), ("fd00::10", 8000)], "chaosstream-t6")
    assert "iptables -I OUTPUT -p tcp -d 10.96.0.10 --dport 8000" in script
    assert "iptables -I INPUT -p tcp -s 10.96.0.10 --sport 8000" in script
    assert "ip6tables -I OUTPUT -p tcp -d fd00::10 --dport 8000" in script
    assert "ip6tables -I INPUT -p tcp -s fd00::10 --sport 8000" in script


needs_netns = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("iptables") or not shutil.which("ip"),
    reason="needs root, ip and iptables",
)


def _rules(ns: str) -> str:
    return subprocess.run(
        ["ip", "netns", "exec", ns, "iptables", "-S"], capture_output=True, text=True
    ).stdout


@pytest.fixture
def ns():
    """A scratch network namespace, removed with everything in it."""
    name = f"csstest-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
    yield name
    subprocess.run(["ip", "netns", "del", name], check=False)


@needs_netns
def test_ephemeral_script_blocks_then_heal_removes_rules_and_timer(ns):
    tag = f"chaosstream-{uuid.uuid4().hex[:6]}"
    proc = subprocess.Popen(["ip", "netns", "exec", ns, "sh", "-c", ephemeral_script(ROUTE, tag, SOON)])
    expected = [
        f"-d 10.96.0.10/32 -p tcp -m tcp --dport 8000 -m comment --comment {tag} -j DROP",
        f"-s 10.244.1.7/32 -p tcp -m tcp --sport 8080 -m comment --comment {tag} -j DROP",
    ]
    # the script adds its rules one by one: wait for all of them (a loaded machine runs it slowly)
    deadline = time.monotonic() + 20
    rules = ""
    while time.monotonic() < deadline and not all(rule in rules for rule in expected):
        rules = _rules(ns)
        time.sleep(0.05)
    for rule in expected:
        assert rule in rules
    subprocess.run(["ip", "netns", "exec", ns, "sh", "-c", heal_script(tag)], check=True, timeout=10)
    assert proc.wait(timeout=5) == 0, "the timer process did not stop when healed"
    assert tag not in _rules(ns)
    assert not os.path.exists(f"/tmp/{tag}.pid")


@needs_netns
def test_a_late_start_changes_nothing(ns):
    """A container that starts after its deadline (a slow image pull) must not partition anything."""
    tag = f"chaosstream-{uuid.uuid4().hex[:6]}"
    past = int(time.time()) - 1
    for script in (ephemeral_script(ROUTE, tag, past), exec_script(ROUTE, tag, past)):
        proc = subprocess.run(["ip", "netns", "exec", ns, "sh", "-c", script], timeout=10)
        assert proc.returncode == 0
        assert tag not in _rules(ns)


@needs_netns
def test_timer_heals_by_itself(ns):
    tag = f"chaosstream-{uuid.uuid4().hex[:6]}"
    subprocess.run(
        ["ip", "netns", "exec", ns, "sh", "-c", exec_script(ROUTE, tag, int(time.time()) + 2)],
        check=True,
        timeout=10,
    )
    assert tag in _rules(ns)
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline and tag in _rules(ns):
        time.sleep(0.1)
    assert tag not in _rules(ns), "the dead-man timer did not heal the partition"


@needs_netns
def test_probe_sees_the_cut_and_what_stays_reachable(ns):
    """The verification probe: the cut destination is closed, a listener on another port stays open."""

    tag = f"chaosstream-{uuid.uuid4().hex[:6]}"
    server = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            ns,
            "python3",
            "-c",
            "import socket,time\n"
            "a=socket.socket(); a.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); a.bind(('127.0.0.1', 18000)); a.listen()\n"
            "b=socket.socket(); b.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); b.bind(('127.0.0.1', 18443)); b.listen()\n"
            "time.sleep(30)",
        ]
    )
    try:
        time.sleep(0.5)
        cut, keep = [("127.0.0.1", 18000)], [("127.0.0.1", 18443)]

        def probe(wait: float) -> str:
            command = ["ip", "netns", "exec", ns, "sh", "-c", probe_script(tag, cut, keep, wait)]
            return subprocess.run(command, capture_output=True, text=True, timeout=20).stdout

        out = probe(0.2)
        assert "rules 0" in out and "cut 127.0.0.1 18000 open" in out  # nothing injected yet
        subprocess.run(["ip", "netns", "exec", ns, "sh", "-c", inject_script(cut, tag)], check=True)
        out = probe(1.0)
        assert "rules 2" in out
        assert "cut 127.0.0.1 18000 closed" in out
        assert "keep 127.0.0.1 18443 open" in out
    finally:
        server.kill()


@needs_netns
@pytest.mark.skipif(
    not shutil.which("unshare") or not shutil.which("nsenter"), reason="needs unshare and nsenter"
)
def test_hang_refuses_a_pid_1_agent_and_freezes_a_child_one():
    """SIGSTOP from inside a PID namespace cannot reach its init: the hang script says so (exit 4) rather
    than report a freeze that did not happen; under an init (tini, pause) it freezes the agent."""
    from chaosstream.faults.scripts import hang_script, thaw_script

    def state(pid: str) -> str:
        return next(line.split()[1] for line in open(f"/proc/{pid}/status") if line.startswith("State:"))

    for shape in ("pid1", "init"):
        argv = ["sleep", "30"] if shape == "pid1" else ["sh", "-c", "sleep 30 & wait"]
        agent = subprocess.Popen(["unshare", "--pid", "--fork", "--mount-proc", *argv])
        try:
            time.sleep(0.5)
            init = open(f"/proc/{agent.pid}/task/{agent.pid}/children").read().split()[0]
            tag = f"chaosstream-{uuid.uuid4().hex[:6]}"
            enter = ["nsenter", "-t", init, "-p", "-m", "--", "sh", "-c"]
            script = hang_script(tag, int(time.time()) + 20)
            if shape == "pid1":
                proc = subprocess.run(enter + [script], capture_output=True, text=True, timeout=10)
                assert proc.returncode == 4 and "PID 1" in proc.stderr
                assert state(init) != "T"
                continue
            hang = subprocess.Popen(enter + [script])
            frozen = open(f"/proc/{init}/task/{init}/children").read().split()[0]
            deadline = time.monotonic() + 5
            while state(frozen) != "T" and time.monotonic() < deadline:
                time.sleep(0.05)
            assert state(frozen) == "T"
            out = subprocess.run(
                enter + [thaw_script(tag)], capture_output=True, text=True, timeout=10
            ).stdout
            assert out.strip().startswith("1")
            hang.wait(timeout=5)
            assert state(frozen) != "T"
        finally:
            agent.kill()
            agent.wait()
