"""Chaos Toolkit controls: `chaosstream.controls.timeline` (background sampling of agents, sessions and
commands into the journal) and `chaosstream.controls.safety` (signal-correct rollbacks and a run lock)."""
