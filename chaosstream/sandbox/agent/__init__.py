"""Sandbox agent: a separate OS process that behaves like StreamSpace's k8s-agent.

Run it with ``python -m chaosstream.sandbox.agent``; it is configured from the environment exactly like
the real agent (``AGENT_ID``, ``CONTROL_PLANE_URL``, ``AGENT_API_KEY``, ``NAMESPACE``, ``KUBECONFIG``,
``HEALTH_CHECK_INTERVAL``, ``ENABLE_HA`` (Lease leader election, see leader.py), …; ``AGENT_ID`` may be the
chart's ``$(AGENT_ID_PREFIX)-$(POD_NAME)``, which the emulated kubelet expands) plus the sandbox extras ``SANDBOX_TIMERS``, ``SANDBOX_FAULTS`` and
``SANDBOX_AGENT_ID_PREFIX``. See docs/streamspace.md#3-agent-and-control-plane-protocol and
docs/streamspace.md#4-the-agent-on-kubernetes.

Faults handled here:

* ``batched-frames``: nothing to switch. Like the real agent (baseline included) the agent parses every
  frame as one JSON document, so a frame of newline-joined documents is dropped with a logged parse error
  and no ack; the control plane decides whether it batches.
* ``slow-reconnect``: before the first connection and before every reconnect attempt the agent sleeps the
  sum of the whole backoff list instead of the attempt's own delay.

Known deviations from the real agent, all deliberate: WebSocket control frames are handled by a reader
task, so pongs extend the read deadline even while a command runs (the real agent only sees them between
commands); the write path survives write errors (baseline, docs/streamspace.md#37-agent-reconnection); ``HEALTH_CHECK_INTERVAL`` keeps
sub-second durations; ``shutdown`` is logged and ignored.

VNC tunnels (``vnc.py``): a WebSocket port-forward (aiohttp, ``kubeapi.py``) to the session pod's port 3000,
``vnc_ready``/``vnc_data``/``vnc_error`` up, ``vnc_data``/``vnc_close`` down; ``SANDBOX_PROFILE=as-built``
opens a session's tunnel once at start_session as the real agent does, ``intended`` opens one per UI
connection on demand.
"""
