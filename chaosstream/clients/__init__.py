"""Clients of what an experiment talks to: the StreamSpace API, its PostgreSQL and Kubernetes."""
