"""Fixtures for the Kubernetes emulator conformance suite: a threaded emulator and a real client."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from helpers.kube import RecordingRuntime, emulator
from kubernetes import client, config

from chaosstream.sandbox.kube import KubeEmulator


@pytest.fixture
def kubelet() -> RecordingRuntime:
    return RecordingRuntime()


@pytest.fixture
def emu(kubelet: RecordingRuntime, tmp_path: Path) -> Iterator[KubeEmulator]:
    with emulator(tmp_path / "kubeconfig", runtime=kubelet) as emulator_:
        yield emulator_


@pytest.fixture
def kubeconfig(emu: KubeEmulator, tmp_path: Path) -> str:
    return str(tmp_path / "kubeconfig")  # written by `emulator` for the namespace "default"


@pytest.fixture
def api(kubeconfig: str) -> Iterator[client.ApiClient]:
    api_client = config.new_client_from_config(config_file=kubeconfig)
    yield api_client
    api_client.close()


@pytest.fixture
def core(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)


@pytest.fixture
def apps(api: client.ApiClient) -> client.AppsV1Api:
    return client.AppsV1Api(api)
