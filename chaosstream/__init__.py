"""Chaos Toolkit extension for StreamSpace: probes, actions and controls for agent failover chaos."""

from typing import List

from chaoslib.discovery.discover import discover_actions, discover_probes, initialize_discovery_result
from chaoslib.types import DiscoveredActivities, Discovery

__version__ = "0.1.0"
__all__ = ["__version__", "discover", "load_exported_activities"]


def discover(discover_system: bool = True) -> Discovery:
    """Discover the StreamSpace activities this extension offers."""
    discovery = initialize_discovery_result("chaostoolkit-streamspace", __version__, "streamspace")
    discovery["activities"].extend(load_exported_activities())
    return discovery


def load_exported_activities() -> List[DiscoveredActivities]:
    """Every exported probe and action, with its probe/action type set correctly."""
    activities: List[DiscoveredActivities] = []
    activities.extend(discover_probes("chaosstream.probes"))
    activities.extend(discover_actions("chaosstream.actions"))
    return activities
