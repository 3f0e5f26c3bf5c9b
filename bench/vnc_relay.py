"""VNC through the sandbox's control plane: handshake latency and relay throughput.

    python bench/vnc_relay.py [--connects 50] [--profile intended] [--megabytes 8]

Starts a sandbox (fast timers), runs one session and measures, as a browser's client would see them through
`GET /api/v1/vnc/:sessionId` (control plane → agent tunnel → pods/portforward → the pod's RFB desktop):

* connect → RFB banner, and connect → first FramebufferUpdate (banner, security None, ServerInit, one
  non-incremental update request), p50/p95 over `--connects` fresh connections;
* round trip of one FramebufferUpdateRequest → FramebufferUpdate on an open stream (p50/p95 over 200);
* UI → pod throughput: `--megabytes` of ClientCutText in 48 KiB messages, then one update request as a
  barrier (the pod reads in order, so its answer means every byte arrived);
* the control plane's and the agent's CPU seconds over the whole run.
"""

import argparse
import os
import shutil
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import httpx  # noqa: E402
from helpers.vnc import VncStream  # noqa: E402


def _pct(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _cpu(pid: int, descendants: bool = True) -> float:
    """User + system CPU seconds of `pid` (and its live descendants: the agent runs under pidinit)."""
    total = 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        for task in Path(f"/proc/{pid}/task").iterdir() if descendants else ():
            for child in (task / "children").read_text().split():
                total += _cpu(int(child))
    except OSError:
        pass
    return total


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--connects", type=int, default=50)
    parser.add_argument("--profile", default="intended")
    parser.add_argument("--megabytes", type=float, default=8.0)
    args = parser.parse_args()
    from chaosstream.sandbox.daemon.client import daemon_pid, start_daemon, stop_daemon

    state = Path(tempfile.mkdtemp(prefix="bench-vnc-"))
    env = start_daemon(state, parent_pid=os.getpid(), tenants=False, profile=args.profile)
    try:
        api = env["STREAMSPACE_API_URL"]
        http = httpx.Client(base_url=api, timeout=10)
        token = http.post(
            "/api/v1/auth/login", json={"username": "admin", "password": env["STREAMSPACE_PASSWORD"]}
        ).json()["token"]
        headers = {"Authorization": f"Bearer {token}"}
        body = {"user": "admin", "template": "firefox-browser", "persistentHome": False}
        session_id = http.post("/api/v1/sessions", json=body, headers=headers).json()["name"]
        deadline = time.monotonic() + 60
        while http.get(f"/api/v1/sessions/{session_id}", headers=headers).json().get("state") != "running":
            if time.monotonic() > deadline:
                raise SystemExit("the session did not run within 60 s")
            time.sleep(0.05)
        sandbox_pid = daemon_pid(state)
        agent_pids = [int(p.read_text()) for p in (state / "pids").glob("*.pid")]
        cpu_before = {pid: _cpu(pid, pid != sandbox_pid) for pid in [sandbox_pid, *agent_pids] if pid}

        banner, first_update = [], []
        for _ in range(args.connects):
            started = time.perf_counter()
            stream = VncStream(api, session_id, token)
            stream.read(12, timeout=20)
            banner.append(time.perf_counter() - started)
            stream.buffer = b"RFB 003.008\n" + stream.buffer  # handshake() reads the banner again
            stream.handshake(timeout=20)
            stream.update(incremental=False)
            first_update.append(time.perf_counter() - started)
            stream.close()

        stream = VncStream(api, session_id, token)
        stream.handshake()
        rtts = []
        for _ in range(200):
            started = time.perf_counter()
            stream.update(incremental=False)
            rtts.append(time.perf_counter() - started)
        chunk = 48 * 1024
        message = struct.pack(">B3xI", 6, chunk) + b"x" * chunk
        count = max(1, int(args.megabytes * 1024 * 1024 / chunk))
        started = time.perf_counter()
        for _ in range(count):
            stream.send(message)
        stream.update(incremental=False, timeout=120)
        upload_s = time.perf_counter() - started
        stream.close()
        cpu = {pid: _cpu(pid, pid != sandbox_pid) - before for pid, before in cpu_before.items()}

        ms = lambda v: f"{v * 1000:.1f} ms"  # noqa: E731
        print(f"profile {args.profile}, {args.connects} connects (fresh tunnel each), one session")
        print(f"connect -> RFB banner          p50 {ms(_pct(banner, 0.5))}  p95 {ms(_pct(banner, 0.95))}")
        print(
            f"connect -> first update        p50 {ms(_pct(first_update, 0.5))}  p95 {ms(_pct(first_update, 0.95))}"
        )
        print(
            f"update request round trip      p50 {ms(_pct(rtts, 0.5))}  p95 {ms(_pct(rtts, 0.95))}  ({1 / statistics.mean(rtts):.0f}/s)"
        )
        print(
            f"UI -> pod throughput           {count * chunk / upload_s / 1e6:.2f} MB/s ({count * chunk / 1e6:.1f} MB in {upload_s:.2f} s, base64 on the wire)"
        )
        print(
            f"CPU s: sandbox process {cpu.get(sandbox_pid, 0):.2f}, agent {sum(v for p, v in cpu.items() if p != sandbox_pid):.2f}"
        )
    finally:
        stop_daemon(state)
        shutil.rmtree(state, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
