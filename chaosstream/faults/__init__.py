"""Faults chaosstream leaves in a cluster: how each is injected, recorded, expired and undone."""
