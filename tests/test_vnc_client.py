"""The VNC client, probes and stream monitor against a real WebSocket RFB server on 127.0.0.1 (tests/helpers/rfb.py):
the handshake, one sentence per proxy answer, bounded waits, no token in a URL, and the monitor's outage
against the server's own record of when it sent bytes."""

import threading
import time

import pytest
from chaoslib.exceptions import ActivityFailed
from helpers.rfb import PASSWORD, TOKEN, RFBProxy
from helpers.sentences import assert_one_sentence
from helpers.servers import BlackHole

from chaosstream.clients.vnc import VNCFailure, open_stream, vnc_url
from chaosstream.settings import resolve_settings


@pytest.fixture(scope="module")
def proxy():
    server = RFBProxy()
    yield server
    server.close()


@pytest.fixture
def config(proxy):
    return {"streamspace_api_url": proxy.url, "streamspace_poll_interval": 0.1}


SECRETS = {"username": "admin", "password": PASSWORD}


def settings_for(url):
    return resolve_settings({"streamspace_api_url": url}, SECRETS)


def test_handshake_measures_banner_and_first_update_with_the_token_in_a_header_only(proxy):
    stream, hs = open_stream(settings_for(proxy.url), "s-ok", 5.0)
    stream.close()
    assert hs.version == "003.008" and (hs.width, hs.height) == (640, 480) and hs.name == "test"
    assert 0 < hs.upgrade_s <= hs.banner_s <= hs.first_update_s < 5
    # the server saw the JWT in the Authorization header and never in a URL
    assert proxy.headers[-1]["Authorization"] == f"Bearer {TOKEN}"
    assert not any(TOKEN in r or "token" in r for r in proxy.requests)
    assert vnc_url("https://api.example/base/", "a b") == "wss://api.example/base/api/v1/vnc/a%20b"


@pytest.mark.parametrize(
    "mode, reason, words",
    [
        ("404", "not-found", "unknown to the API (404)"),
        ("403", "forbidden", "only the session's owner"),
        ("409", "not-running", "is not running (state pending)"),
        ("503", "agent", "agent-1 is not connected"),
        ("close", "closed", "closed the stream"),
    ],
)
def test_each_proxy_answer_is_one_sentence_naming_vnc(proxy, mode, reason, words):
    sid = f"s-{mode}"
    proxy.modes[sid] = mode
    with pytest.raises(VNCFailure) as err:
        open_stream(settings_for(proxy.url), sid, 5.0)
    text = str(err.value)
    assert err.value.reason == reason and words in text and sid in text
    assert text.startswith("VNC:") and "\n" not in text and TOKEN not in text and PASSWORD not in text


@pytest.mark.parametrize("mode", ["silent", "hang"])
def test_a_silent_or_hung_server_fails_within_the_timeout(proxy, mode):
    sid = f"s-{mode}"
    proxy.modes[sid] = mode
    started = time.monotonic()
    with pytest.raises(VNCFailure) as err:
        open_stream(settings_for(proxy.url), sid, 0.5)
    assert err.value.reason == "timeout" and "within 0.5s" in str(err.value)
    assert time.monotonic() - started < 3


def test_unreachable_and_blackholed_apis_are_sentences():
    hole = BlackHole()
    try:
        with pytest.raises(ActivityFailed) as err:  # the login hangs: the StreamSpace client's sentence
            open_stream(settings_for(f"http://127.0.0.1:{hole.port}"), "s", 0.5)
        assert "did not answer" in str(err.value)
    finally:
        hole.close()
    with pytest.raises(VNCFailure) as err:
        open_stream(
            resolve_settings({"streamspace_api_url": "http://127.0.0.1:9"}, {"token": TOKEN}), "s", 1.0
        )
    assert err.value.reason == "unreachable" and TOKEN not in str(err.value)


def test_probes_against_the_proxy(proxy, config):
    from chaosstream.probes import vnc_handshake, wait_for_vnc
    from chaosstream.selection import start_run

    start_run()  # this test's own run: nothing created yet
    proxy.modes.update({"p-ok": "ok", "p-down": "503"})
    out = vnc_handshake(session_ids=["p-ok", "p-down"], timeout=3, configuration=config, secrets=SECRETS)
    assert out["ok"] is False and out["failed"] == ["p-down"] and out["checked"] == 2
    assert out["sessions"]["p-ok"]["first_update_ms"] > 0 and "503" in out["sessions"]["p-down"]["error"]
    with pytest.raises(ActivityFailed, match="VNC: no agent can carry"):
        vnc_handshake(session_id="p-down", raise_on_failure=True, configuration=config, secrets=SECRETS)
    # nothing created yet: the steady state holds vacuously
    assert vnc_handshake(configuration=config, secrets=SECRETS)["checked"] == 0

    # wait_for_vnc: not running at first, then streams; early exit with the measured time
    proxy.modes["p-late"] = "409"
    threading.Timer(0.6, lambda: proxy.modes.update({"p-late": "ok"})).start()
    waited = wait_for_vnc(session_ids=["p-ok", "p-late"], timeout=10, configuration=config, secrets=SECRETS)
    assert 0.5 <= waited["elapsed_s"] < 5 and set(waited["sessions"]) == {"p-ok", "p-late"}
    with pytest.raises(
        ActivityFailed, match=r"VNC did not stream for 1 session\(s\) within 0.5s: \[p-down\] VNC: no agent"
    ):
        wait_for_vnc(session_ids=["p-down"], timeout=0.5, configuration=config, secrets=SECRETS)


def test_monitor_outage_agrees_with_the_servers_record(proxy, config):
    """A cut (socket closed, 503 for 1 s: an agent restart) and a freeze (socket open, no bytes: a
    partition): the monitor's outage per session equals the server's own gaps within one interval."""
    from chaosstream.actions import monitor_streams, stop_stream_monitor
    from chaosstream.clients.vncmonitor import journal_data
    from chaosstream.probes import stream_continuity
    from chaosstream.selection import remember_fault_end, start_run

    start_run()
    started = monitor_streams(session_ids=["m-cut", "m-freeze"], configuration=config, secrets=SECRETS)
    assert started["streams"] == 2 and started["stall_after_s"] == pytest.approx(0.5)
    up = stream_continuity(wait=10, configuration=config, secrets=SECRETS)
    assert up["all_up"] and up["interruptions"] == 0
    time.sleep(0.5)
    proxy.cut("m-cut", refuse_for=1.0)
    proxy.frozen["m-freeze"] = True
    time.sleep(0.8)
    proxy.frozen["m-freeze"] = False
    time.sleep(0.5)
    remember_fault_end("cut ended", proxy.refuse_until["m-cut"])
    report = stream_continuity(wait=10, configuration=config, secrets=SECRETS)
    final = stop_stream_monitor()
    assert final["running"] is False
    interval = 0.1
    for sid, truth_min in (("m-cut", 1.0), ("m-freeze", 0.8)):
        truth = proxy.gaps(sid, 0.5)
        session = report["sessions"][sid]
        assert len(truth) == 1 and truth[0] >= truth_min - 0.05, (sid, truth)
        assert session["interruptions"] == 1 and abs(session["outage_s"] - truth[0]) <= interval, (
            sid,
            session,
            truth,
        )
        assert session["longest_gap_s"] == session["outage_s"] and session["up"]
    cut = report["sessions"]["m-cut"]
    assert cut["reconnects"] == 1 and cut["connect_failures"].get("agent", 0) >= 1
    assert 0 <= cut["reconnect_after_fault_s"] <= 0.5 + interval  # retry delay + one interval
    assert report["sessions"]["m-freeze"]["reconnect_after_fault_s"] == 0.0
    assert report["fault_end"] == "cut ended"
    states = [e["state"] for e in journal_data("chaosstream-streams", None)["events"]["m-cut"]]
    assert states == ["up", "gap", "reconnecting", "up"]
    # the monitor's threads are gone
    assert not [t for t in threading.enumerate() if t.name.startswith("chaosstream-vnc-")]


def test_stream_continuity_without_a_monitor_says_what_to_do(config):
    import chaosstream.clients.vncmonitor as vm

    vm._CURRENT[0] = None
    from chaosstream.probes import stream_continuity

    with pytest.raises(ActivityFailed, match="run the action monitor_streams"):
        stream_continuity(configuration=config, secrets=SECRETS)


def test_wss_with_the_configured_ca_and_a_tls_failure_sentence(tmp_path):
    """`https://` API: the stream is `wss://`, verified with 'streamspace_ca_cert'; an unknown CA is one
    sentence naming TLS and what to set."""
    import ssl
    import subprocess

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert), str(key))
    server = RFBProxy(ssl_context=context)
    try:
        trusted = resolve_settings(
            {"streamspace_api_url": server.url, "streamspace_ca_cert": str(cert)}, SECRETS
        )
        stream, hs = open_stream(trusted, "tls-ok", 5.0)
        stream.close()
        assert hs.version == "003.008"
        untrusted = resolve_settings({"streamspace_api_url": server.url}, {"token": TOKEN})
        with pytest.raises(VNCFailure) as err:
            open_stream(untrusted, "tls-bad", 5.0)
        assert (
            err.value.reason == "tls"
            and "streamspace_ca_cert" in str(err.value)
            and TOKEN not in str(err.value)
        )
    finally:
        server.close()


def test_a_fault_that_never_ends_is_named_not_timed(proxy, config):
    """An agent that never comes back (e.g. a new agent awaiting approval) leaves no fault end: the stream
    objective says the fault never ended and which streams are down, rather than blaming the timing."""
    from chaosstream.actions import monitor_streams, stop_stream_monitor
    from chaosstream.probes import stream_continuity
    from chaosstream.selection import remember_fault_start, start_run

    start_run()
    monitor_streams(session_ids=["n-cut"], configuration=config, secrets=SECRETS)
    try:
        assert stream_continuity(wait=10, configuration=config, secrets=SECRETS)["all_up"]
        with pytest.raises(ActivityFailed, match="injected no fault"):
            stream_continuity(max_reconnect_s=0.2, configuration=config, secrets=SECRETS)
        remember_fault_start()
        proxy.cut("n-cut", refuse_for=30)
        time.sleep(1.0)  # the wait for the agent that never came back
        with pytest.raises(ActivityFailed) as info:
            stream_continuity(max_reconnect_s=0.2, configuration=config, secrets=SECRETS)
        message = str(info.value)
        assert "fault never ended" in message and "1 of 1 stream(s) down now (n-cut)" in message, message
        assert_one_sentence(message)
    finally:
        stop_stream_monitor()
