"""Round-trip latency of the Kubernetes emulator through the real python client.

Runs list (label selector), read, patch (strategic merge) and exec (WebSocket) in rotation, N requests in
total (default 10,000), then prints p50/p95 per operation and the p50 of every block of 1,000 requests, with
the last/first block ratio to show the per-request cost stays flat.

    python bench/kube_roundtrip.py [N]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from kubernetes import client, config
from kubernetes.stream import stream

from chaosstream.sandbox.kube import ContainerRuntime, KubeEmulator, write_kubeconfig


class EchoRuntime(ContainerRuntime):
    """Exec answers at once with its arguments."""

    async def exec(self, pod: dict, container: str, command: list[str], stdin: bytes | None):
        return (" ".join(command[1:]) + "\n").encode(), b"", 0


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(total: int = 10_000) -> None:
    emu = KubeEmulator(runtime=EchoRuntime()).start_in_thread()
    try:
        path = str(Path(tempfile.mkdtemp()) / "kubeconfig")
        write_kubeconfig(path, emu.url)
        api = config.new_client_from_config(config_file=path)
        core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
        apps.create_namespaced_deployment(
            "default",
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "web"},
                "spec": {
                    "replicas": 5,
                    "selector": {"matchLabels": {"app": "web"}},
                    "template": {
                        "metadata": {"labels": {"app": "web"}},
                        "spec": {"containers": [{"name": "main", "image": "busybox"}]},
                    },
                },
            },
        )
        for i in range(20):
            core.create_namespaced_config_map(
                "default", {"metadata": {"name": f"noise-{i}", "labels": {"n": "1"}}}
            )
        deadline = time.monotonic() + 10
        while (apps.read_namespaced_deployment("web", "default").status.available_replicas or 0) < 5:
            if time.monotonic() > deadline:
                raise SystemExit("deployment did not become available")
            time.sleep(0.05)
        pod = core.list_namespaced_pod("default", label_selector="app=web").items[0].metadata.name

        ops = {
            "list": lambda i: core.list_namespaced_pod("default", label_selector="app=web"),
            "read": lambda i: apps.read_namespaced_deployment("web", "default"),
            "patch": lambda i: apps.patch_namespaced_deployment(
                "web", "default", {"metadata": {"annotations": {"bench/counter": str(i)}}}
            ),
            "exec": lambda i: stream(
                core.connect_get_namespaced_pod_exec,
                pod,
                "default",
                command=["echo", "hi"],
                stderr=True,
                stdin=False,
                stdout=True,
                tty=False,
            ),
        }
        names = list(ops)
        for i in range(40):  # warm-up (connection pool, import caches)
            ops[names[i % 4]](i)
        samples: dict[str, list[tuple[int, float]]] = {n: [] for n in names}
        for i in range(total):
            name = names[i % 4]
            t0 = time.perf_counter()
            ops[name](i)
            samples[name].append((i, (time.perf_counter() - t0) * 1000))

        print(f"{total} requests through the kubernetes python client against {emu.url}")
        print(
            f"{'op':6} {'n':>6} {'p50 ms':>8} {'p95 ms':>8} {'first-1k p50':>13} {'last-1k p50':>12} {'ratio':>6}"
        )
        blocks = max(1, total // 1000)
        for name in names:
            values = [v for _, v in samples[name]]
            per_block = []
            for b in range(blocks):
                chunk = [v for i, v in samples[name] if b * 1000 <= i < (b + 1) * 1000]
                if chunk:
                    per_block.append(statistics.median(chunk))
            ratio = per_block[-1] / per_block[0] if per_block else float("nan")
            print(
                f"{name:6} {len(values):6d} {_pct(values, 0.5):8.3f} {_pct(values, 0.95):8.3f} "
                f"{per_block[0]:13.3f} {per_block[-1]:12.3f} {ratio:6.2f}"
            )
        print("per-1000-request p50 (ms), block by block:")
        for name in names:
            per_block = [
                statistics.median([v for i, v in samples[name] if b * 1000 <= i < (b + 1) * 1000])
                for b in range(blocks)
                if any(b * 1000 <= i < (b + 1) * 1000 for i, _ in samples[name])
            ]
            print(f"  {name:6} " + " ".join(f"{v:.2f}" for v in per_block))
        api.close()
    finally:
        emu.stop_in_thread()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
