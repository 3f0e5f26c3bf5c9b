"""pods/exec over WebSocket, pods/ephemeralcontainers and pods/log."""

from __future__ import annotations

import json

import pytest
import websocket
from helpers.kube import pod_manifest
from helpers.waits import wait_for
from kubernetes import client
from kubernetes.client.rest import ApiException
from kubernetes.stream import stream


def _running(core: client.CoreV1Api, name: str) -> None:
    wait_for(lambda: core.read_namespaced_pod(name, "default").status.phase == "Running")


def _exec(core: client.CoreV1Api, pod: str, command: list, stdin: bool = False, **kwargs):
    """pods/exec through the real client's `stream`, stdout and stderr on, no tty."""
    return stream(
        core.connect_get_namespaced_pod_exec,
        pod,
        "default",
        command=command,
        stderr=True,
        stdin=stdin,
        stdout=True,
        tty=False,
        **kwargs,
    )


def test_exec_stdout_stderr_and_exit_codes(core: client.CoreV1Api, kubelet) -> None:
    core.create_namespaced_pod("default", pod_manifest("e"))
    _running(core, "e")
    out = _exec(core, "e", ["echo", "hi", "there"])
    assert out == "hi there\n"
    resp = _exec(core, "e", ["fail", "3"], _preload_content=False)
    assert resp.subprotocol == "v5.channel.k8s.io"
    resp.run_forever(timeout=5)
    assert resp.read_stdout() == "partial\n" and resp.read_stderr() == "boom\n"
    assert resp.returncode == 3
    assert ("exec", "e", ("main", ["fail", "3"])) in kubelet.calls


def test_exec_stdin_with_v5_close(core: client.CoreV1Api) -> None:
    core.create_namespaced_pod("default", pod_manifest("s"))
    _running(core, "s")
    resp = _exec(core, "s", ["cat"], stdin=True, _preload_content=False)
    resp.write_stdin("hello stdin")
    resp.close_channel(0)
    resp.run_forever(timeout=5)
    assert resp.read_stdout() == "hello stdin" and resp.returncode == 0


def test_exec_v4_protocol(emu, core: client.CoreV1Api) -> None:
    core.create_namespaced_pod("default", pod_manifest("v4"))
    _running(core, "v4")
    url = (
        emu.url.replace("http", "ws")
        + "/api/v1/namespaces/default/pods/v4/exec?command=echo&command=v4&stdout=1"
    )
    ws = websocket.create_connection(url, subprotocols=["v4.channel.k8s.io"])
    assert ws.subprotocol == "v4.channel.k8s.io"
    frames = []
    while True:
        try:
            frames.append(ws.recv())
        except websocket.WebSocketConnectionClosedException:
            break
        if not frames[-1]:
            break
    assert frames[0] == b"\x01v4\n"
    assert json.loads(frames[1][1:])["status"] == "Success"


def test_exec_errors_before_upgrade(core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as err:
        _exec(core, "ghost", ["echo"])
    assert "404" in str(err.value.reason) and "NotFound" in str(err.value.reason)
    core.create_namespaced_pod("default", pod_manifest("two", containers=2))
    _running(core, "two")
    with pytest.raises(ApiException) as err:
        _exec(core, "two", ["echo"], container="nope")
    assert "400" in str(err.value.reason) and "container nope is not valid" in str(err.value.reason)
    with pytest.raises(ApiException) as err:  # several containers and none named
        _exec(core, "two", ["echo"])
    assert "a container name must be specified" in str(err.value.reason)
    out = _exec(core, "two", ["whoami"], container="c1")
    assert out == "two/c1\n"


def test_ephemeral_containers_start_and_exec(core: client.CoreV1Api, kubelet) -> None:
    core.create_namespaced_pod("default", pod_manifest("dbg"))
    _running(core, "dbg")
    body = {
        "spec": {
            "ephemeralContainers": [
                {
                    "name": "debugger",
                    "image": "nicolaka/netshoot",
                    "command": ["sleep", "inf"],
                    "targetContainerName": "main",
                }
            ]
        }
    }
    pod = core.patch_namespaced_pod_ephemeralcontainers("dbg", "default", body)
    assert [c.name for c in pod.spec.ephemeral_containers] == ["debugger"]
    status = wait_for(lambda: core.read_namespaced_pod("dbg", "default").status.ephemeral_container_statuses)
    assert status[0].name == "debugger" and status[0].state.running is not None
    assert ("ephemeral", "dbg", "debugger") in kubelet.calls
    out = _exec(core, "dbg", ["whoami"], container="debugger")
    assert out == "dbg/debugger\n"
    # a second one merges by name; a failing one reports a terminated state
    core.patch_namespaced_pod_ephemeralcontainers(
        "dbg", "default", {"spec": {"ephemeralContainers": [{"name": "broken", "image": "x"}]}}
    )
    pod = core.read_namespaced_pod_ephemeralcontainers("dbg", "default")
    assert [c.name for c in pod.spec.ephemeral_containers] == ["debugger", "broken"]
    broken = wait_for(
        lambda: [
            s
            for s in core.read_namespaced_pod("dbg", "default").status.ephemeral_container_statuses or []
            if s.name == "broken"
        ]
    )
    assert broken[0].state.terminated.message == "cannot join namespace"
    with pytest.raises(ApiException) as err:  # existing ephemeral containers cannot be removed
        core.patch_namespaced_pod_ephemeralcontainers(
            "dbg", "default", [{"op": "remove", "path": "/spec/ephemeralContainers/0"}]
        )
    assert err.value.status == 422
    # and the main resource cannot change them
    core.patch_namespaced_pod(
        "dbg", "default", {"spec": {"ephemeralContainers": [{"name": "sneaky", "image": "x"}]}}
    )
    assert len(core.read_namespaced_pod("dbg", "default").spec.ephemeral_containers) == 2


def test_pod_log(core: client.CoreV1Api) -> None:
    core.create_namespaced_pod("default", pod_manifest("lg"))
    assert core.read_namespaced_pod_log("lg", "default") == "log of lg/main\nline2\n"
    assert core.read_namespaced_pod_log("lg", "default", tail_lines=1) == "line2\n"
