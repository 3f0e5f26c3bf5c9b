"""A Kubernetes API emulator on aiohttp for the sandbox (real HTTP; python client, chaosk8s and kubectl).

Usage::

    emu = KubeEmulator(kubelet=MyKubelet()).start_in_thread()
    write_kubeconfig("/tmp/kubeconfig", emu.url)
    ...
    emu.stop_in_thread()
"""

from .emulator import KubeEmulator
from .errors import ApiError
from .kubeconfig import write_kubeconfig
from .kubelet import Kubelet

__all__ = ["ApiError", "KubeEmulator", "Kubelet", "write_kubeconfig"]
