"""Sandbox control plane: a faithful stand-in of StreamSpace v2's Go API (aiohttp + PostgreSQL).

Baseline behaviour follows StreamSpace's ADRs; the faults of ``chaosstream.sandbox.faults`` switch on
the defects the real code has (see docs/streamspace.md).
"""

from chaosstream.sandbox.controlplane.app import create_app
from chaosstream.sandbox.controlplane.config import ControlPlaneConfig
from chaosstream.sandbox.controlplane.server import ControlPlaneThread, serve, start_site

__all__ = ["ControlPlaneConfig", "ControlPlaneThread", "create_app", "serve", "start_site"]
