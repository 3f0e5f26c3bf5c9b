"""`pods/portforward` over WebSocket through the real client's `kubernetes.stream.portforward`, against
session pods running the sandbox's RFB desktop (processruntime + rfb): the channel protocol, Kubernetes'
errors, and RBAC (a WebSocket GET needs `get` and, since 1.35, `create` on pods/portforward)."""

import time

import pytest
import yaml
from helpers.kube import emulator
from helpers.vnc import rfb_handshake
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.stream import portforward

from chaosstream.sandbox.processruntime import ProcessRuntime

NS = "streamspace"
POD = "admin-firefox-browser-0a1b2c3d-5f6d7c8b9-x2x4z"


def _pod(name: str = POD) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "streamspace-session", "session": name[:30]}},
        "spec": {
            "containers": [
                {"name": "session", "image": "lscr.io/linuxserver/firefox:latest", "ports": [{"name": "vnc", "containerPort": 3000}]}
            ]
        },
    }  # fmt: skip


def _client_for(kubeconfig, token):
    doc = yaml.safe_load(kubeconfig.read_text())
    doc["users"][0]["user"] = {"token": token}
    path = kubeconfig.with_name(f"sa-{token[-6:]}")
    path.write_text(yaml.safe_dump(doc))
    return client.CoreV1Api(config.new_client_from_config(config_file=str(path)))


def _service_account(core, rbac, name, portforward_verbs):
    core.create_namespaced_service_account(
        NS, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=name))
    )
    rules = [client.V1PolicyRule(api_groups=[""], resources=["pods"], verbs=["get", "list"])]
    if portforward_verbs:
        rules.append(
            client.V1PolicyRule(api_groups=[""], resources=["pods/portforward"], verbs=portforward_verbs)
        )
    rbac.create_namespaced_role(NS, client.V1Role(metadata=client.V1ObjectMeta(name=name), rules=rules))
    rbac.create_namespaced_role_binding(
        NS,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name=name),
            role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name=name),
            subjects=[client.RbacV1Subject(kind="ServiceAccount", name=name, namespace=NS)],
        ),
    )
    request = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[]))
    return core.create_namespaced_service_account_token(name, NS, request).status.token
    # fmt: skip


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pf")
    runtime = ProcessRuntime(tmp, None, ready_delay=0.0, vnc_frame_interval=0.05)
    with emulator(tmp / "kubeconfig", NS, runtime=runtime) as emu:
        core = client.CoreV1Api(config.new_client_from_config(config_file=str(tmp / "kubeconfig")))
        core.create_namespaced_pod(NS, _pod())
        deadline = time.monotonic() + 10
        while core.read_namespaced_pod(POD, NS).status.phase != "Running":
            assert time.monotonic() < deadline, "the session pod never ran"
            time.sleep(0.05)
        yield emu, core, runtime, tmp / "kubeconfig"


def _handshake_error(call) -> str:
    with pytest.raises(ApiException) as info:
        call()
    return str(info.value.reason)


def test_portforward_carries_the_session_desktop(cluster):
    _, core, runtime, _ = cluster
    first = portforward(core.connect_get_namespaced_pod_portforward, POD, NS, ports="3000")
    second = portforward(core.connect_get_namespaced_pod_portforward, POD, NS, ports="3000")
    try:
        assert rfb_handshake(first.socket(3000)) == b"RFB 003.008\n"
        assert rfb_handshake(second.socket(3000)) == b"RFB 003.008\n"  # each forward is its own connection
        assert first.error(3000) is None
    finally:
        first.close()
        second.close()
    (desktop,) = runtime.desktops.values()
    assert desktop[3000].connections >= 2


def test_errors_are_kubernetes_ones(cluster):
    _, core, _, _ = cluster
    assert "Handshake status 404" in _handshake_error(
        lambda: portforward(core.connect_get_namespaced_pod_portforward, "no-such-pod", NS, ports="3000")
    )
    # nothing listens on 3001: the kubelet's error on the port's error channel, then the socket ends
    refused = portforward(core.connect_get_namespaced_pod_portforward, POD, NS, ports="3001")
    sock = refused.socket(3001)
    sock.settimeout(5)
    assert sock.recv(10) == b""
    assert "error forwarding port 3001" in refused.error(3001)
    assert "connection refused" in refused.error(3001)


def test_a_stopped_pod_ends_the_forward_and_refuses_new_ones(cluster):
    emu, core, _, _ = cluster
    name = "admin-firefox-browser-0f0f0f0f-5f6d7c8b9-abcde"
    core.create_namespaced_pod(NS, _pod(name))
    deadline = time.monotonic() + 10
    while core.read_namespaced_pod(name, NS).status.phase != "Running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    forward = portforward(core.connect_get_namespaced_pod_portforward, name, NS, ports="3000")
    sock = forward.socket(3000)
    assert rfb_handshake(sock) == b"RFB 003.008\n"
    core.delete_namespaced_pod(name, NS, grace_period_seconds=0)
    sock.settimeout(10)
    assert sock.recv(4096) == b"", "the forward outlived its pod"
    # a pod that is not running (here: finished) is refused before the upgrade, as the API does
    core.create_namespaced_pod(NS, _pod(name + "x"))
    deadline = time.monotonic() + 10
    while core.read_namespaced_pod(name + "x", NS).status.phase != "Running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    core.patch_namespaced_pod_status(name + "x", NS, {"status": {"phase": "Succeeded"}})
    reason = _handshake_error(
        lambda: portforward(core.connect_get_namespaced_pod_portforward, name + "x", NS, ports="3000")
    )
    assert "Handshake status 400" in reason and "is not running" in reason


def test_rbac_needs_get_and_create_on_pods_portforward(cluster):
    _, core, _, kubeconfig = cluster
    rbac = client.RbacAuthorizationV1Api(core.api_client)
    none = _client_for(kubeconfig, _service_account(core, rbac, "no-forward", []))
    get_only = _client_for(kubeconfig, _service_account(core, rbac, "get-only", ["get"]))
    both = _client_for(kubeconfig, _service_account(core, rbac, "forwarder", ["create", "get"]))
    denied = _handshake_error(
        lambda: portforward(none.connect_get_namespaced_pod_portforward, POD, NS, ports="3000")
    )
    assert "Handshake status 403" in denied
    assert (
        'cannot get resource \\"pods/portforward\\"' in denied
        or 'cannot get resource "pods/portforward"' in denied
    )
    denied = _handshake_error(
        lambda: portforward(get_only.connect_get_namespaced_pod_portforward, POD, NS, ports="3000")
    )
    assert "cannot create resource" in denied and "pods/portforward" in denied
    forward = portforward(both.connect_get_namespaced_pod_portforward, POD, NS, ports="3000")
    try:
        assert rfb_handshake(forward.socket(3000)) == b"RFB 003.008\n"
    finally:
        forward.close()


def test_the_sandbox_agents_own_port_forward_speaks_the_same_protocol(cluster):
    """The agent's tunnel path (agent/kubeapi.py: aiohttp, not the python client, so that a new agent
    process opens tunnels in milliseconds as the Go agent does) against the same emulator: the pod lookup,
    the RFB banner through channel 0, the kubelet's error text on channel 1, and a 403 read like client-go."""
    import asyncio

    import aiohttp

    from chaosstream.sandbox.agent.kubeapi import Endpoint, PortForward, session_pod
    from chaosstream.sandbox.agent.workloads import WorkloadError

    _, core, _, kubeconfig = cluster
    rbac = client.RbacAuthorizationV1Api(core.api_client)
    token = _service_account(core, rbac, "agent-no-forward", [])

    async def scenario() -> None:
        endpoint = Endpoint.load(str(kubeconfig))
        async with aiohttp.ClientSession() as http:
            assert await session_pod(http, endpoint, NS, POD[:30]) == (POD, 3000)
            with pytest.raises(WorkloadError, match="no pod found for session nobody"):
                await session_pod(http, endpoint, NS, "nobody")
        forward = await PortForward.open(endpoint, NS, POD, 3000)
        try:
            assert (await asyncio.wait_for(forward.read(), 10)).startswith(b"RFB 003.008\n")
            await forward.write(b"RFB 003.008\n")  # the desktop answers with its security types
            assert await asyncio.wait_for(forward.read(), 10)
        finally:
            await forward.close()
        closed = await PortForward.open(endpoint, NS, POD, 3001)  # nothing listens there
        try:
            assert await asyncio.wait_for(closed.read(), 10) == b""
            assert "error forwarding port 3001" in closed.error()
        finally:
            await closed.close()
        denied = Endpoint(endpoint.server, token)
        with pytest.raises(WorkloadError) as info:
            await PortForward.open(denied, NS, POD, 3000)
        assert str(info.value).startswith("error upgrading connection: ")
        assert 'cannot get resource "pods/portforward"' in str(info.value)

    asyncio.run(scenario())
