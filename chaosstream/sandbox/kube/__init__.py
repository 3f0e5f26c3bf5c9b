"""A Kubernetes API emulator on aiohttp for the sandbox (real HTTP; python client, chaosk8s and kubectl).

Usage::

    emu = KubeEmulator(runtime=MyContainerRuntime()).start_in_thread()
    write_kubeconfig("/tmp/kubeconfig", emu.url)
    ...
    emu.stop_in_thread()

As on a real node, the kubelet (``kubelet.py``) owns the pod lifecycle and status, and a container runtime
(``runtime.py``, a ``ContainerRuntime`` plug-in) actually runs the containers.
"""

from .emulator import KubeEmulator
from .errors import ApiError
from .kubeconfig import write_kubeconfig
from .runtime import ContainerRuntime

__all__ = ["ApiError", "ContainerRuntime", "KubeEmulator", "write_kubeconfig"]
