"""The shell scripts that partition and heal run in containers we cannot debug at 3 a.m.: they must
parse, and healing must really remove the rules and stop the timer (run here in a scratch network
namespace when root)."""

import os
import shutil
import subprocess
import time
import uuid

import pytest

from chaosstream.actions.network import _ephemeral_script, _exec_script, _heal_script, _inject_script


@pytest.mark.parametrize(
    "script",
    [
        _exec_script([8000], "chaosstream-t1", 5),
        _ephemeral_script([8000, 9000], "chaosstream-t2", 5),
        _heal_script("chaosstream-"),
        _inject_script([1, 65535], "chaosstream-t3"),
    ],
)
def test_scripts_parse(script):
    proc = subprocess.run(["sh", "-n", "-c", script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


needs_netns = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("iptables") or not shutil.which("ip"),
    reason="needs root, ip and iptables",
)


@needs_netns
def test_ephemeral_script_blocks_then_heal_removes_rules_and_timer():
    ns = f"csstest-{uuid.uuid4().hex[:6]}"
    tag = f"chaosstream-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        proc = subprocess.Popen(["ip", "netns", "exec", ns, "sh", "-c", _ephemeral_script([8000], tag, 30)])
        deadline = time.monotonic() + 5
        rules = ""
        while time.monotonic() < deadline and tag not in rules:
            rules = subprocess.run(
                ["ip", "netns", "exec", ns, "iptables", "-S", "OUTPUT"], capture_output=True, text=True
            ).stdout
            time.sleep(0.05)
        assert f"--dport 8000 -m comment --comment {tag} -j DROP" in rules
        subprocess.run(["ip", "netns", "exec", ns, "sh", "-c", _heal_script(tag)], check=True, timeout=10)
        assert proc.wait(timeout=5) == 0, "the timer process did not stop when healed"
        rules = subprocess.run(
            ["ip", "netns", "exec", ns, "iptables", "-S", "OUTPUT"], capture_output=True, text=True
        ).stdout
        assert tag not in rules
        assert not os.path.exists(f"/tmp/{tag}.pid")
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


@needs_netns
def test_timer_heals_by_itself():
    ns = f"csstest-{uuid.uuid4().hex[:6]}"
    tag = f"chaosstream-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(
            ["ip", "netns", "exec", ns, "sh", "-c", _exec_script([8000], tag, 1)], check=True, timeout=10
        )

        def rules():
            return subprocess.run(
                ["ip", "netns", "exec", ns, "iptables", "-S", "OUTPUT"], capture_output=True, text=True
            ).stdout

        assert tag in rules()
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline and tag in rules():
            time.sleep(0.1)
        assert tag not in rules(), "the dead-man timer did not heal the partition"
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
