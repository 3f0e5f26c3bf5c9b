"""Chaos Toolkit extension for StreamSpace: probes, actions and controls for agent failover chaos."""

from typing import Any, Dict, List

# chaoslib is imported inside the functions: the sandbox's agent processes import this package too, and
# their start-up time is part of every measured reconnection.

__version__ = "0.1.0"
__all__ = ["__version__", "discover", "load_exported_activities"]


def discover(discover_system: bool = True) -> Dict[str, Any]:
    """Discover the StreamSpace activities this extension offers."""
    from chaoslib.discovery.discover import initialize_discovery_result

    discovery = initialize_discovery_result("chaostoolkit-streamspace", __version__, "streamspace")
    discovery["activities"].extend(load_exported_activities())
    return discovery


def load_exported_activities() -> List[Dict[str, Any]]:
    """Every exported probe and action, with its probe/action type set correctly."""
    from chaoslib.discovery.discover import discover_actions, discover_probes

    activities: List[Dict[str, Any]] = []
    activities.extend(discover_probes("chaosstream.probes"))
    activities.extend(discover_actions("chaosstream.actions"))
    return activities
