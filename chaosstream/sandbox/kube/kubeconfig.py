"""Generated kubeconfig pointing kubectl / the python client at the emulator."""

from __future__ import annotations

import os

import yaml


def kubeconfig_dict(url: str, namespace: str = "default", context: str = "sandbox") -> dict[str, object]:
    """The kubeconfig as a dict (plain HTTP, a dummy bearer token)."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{"name": context, "cluster": {"server": url}}],
        "users": [{"name": context, "user": {"token": "sandbox-token"}}],
        "contexts": [
            {"name": context, "context": {"cluster": context, "user": context, "namespace": namespace}}
        ],
        "current-context": context,
    }


def write_kubeconfig(path: str, url: str, namespace: str = "default", context: str = "sandbox") -> None:
    """Write a kubeconfig for ``url`` to ``path`` (mode 0600, parent directories created)."""
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        yaml.safe_dump(kubeconfig_dict(url, namespace, context), fh, sort_keys=False)
