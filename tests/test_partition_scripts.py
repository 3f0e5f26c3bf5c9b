"""The shell scripts that partition and heal run in containers we cannot debug at 3 a.m.: they must
parse, and healing must really remove the rules and stop the timer (run here in a scratch network
namespace when root)."""

import os
import shutil
import subprocess
import time
import uuid

import pytest

from chaosstream.faults.scripts import ephemeral_script, exec_script, heal_script, inject_script


@pytest.mark.parametrize(
    "script",
    [
        exec_script([8000], "chaosstream-t1", 5),
        ephemeral_script([8000, 9000], "chaosstream-t2", 5),
        heal_script("chaosstream-"),
        inject_script([1, 65535], "chaosstream-t3"),
    ],
)
def test_scripts_parse(script):
    proc = subprocess.run(["sh", "-n", "-c", script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


needs_netns = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("iptables") or not shutil.which("ip"),
    reason="needs root, ip and iptables",
)


def _rules(ns: str) -> str:
    return subprocess.run(
        ["ip", "netns", "exec", ns, "iptables", "-S", "OUTPUT"], capture_output=True, text=True
    ).stdout


@pytest.fixture
def ns():
    """A scratch network namespace, removed with everything in it."""
    name = f"csstest-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    yield name
    subprocess.run(["ip", "netns", "del", name], check=False)


@needs_netns
def test_ephemeral_script_blocks_then_heal_removes_rules_and_timer(ns):
    tag = f"chaosstream-{uuid.uuid4().hex[:6]}"
    proc = subprocess.Popen(["ip", "netns", "exec", ns, "sh", "-c", ephemeral_script([8000], tag, 30)])
    deadline = time.monotonic() + 5
    rules = ""
    while time.monotonic() < deadline and tag not in rules:
        rules = _rules(ns)
        time.sleep(0.05)
    assert f"--dport 8000 -m comment --comment {tag} -j DROP" in rules
    subprocess.run(["ip", "netns", "exec", ns, "sh", "-c", heal_script(tag)], check=True, timeout=10)
    assert proc.wait(timeout=5) == 0, "the timer process did not stop when healed"
    assert tag not in _rules(ns)
    assert not os.path.exists(f"/tmp/{tag}.pid")


@needs_netns
def test_timer_heals_by_itself(ns):
    tag = f"chaosstream-{uuid.uuid4().hex[:6]}"
    subprocess.run(
        ["ip", "netns", "exec", ns, "sh", "-c", exec_script([8000], tag, 1)], check=True, timeout=10
    )

    assert tag in _rules(ns)
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline and tag in _rules(ns):
        time.sleep(0.1)
    assert tag not in _rules(ns), "the dead-man timer did not heal the partition"
