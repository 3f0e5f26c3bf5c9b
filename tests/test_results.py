"""Scheduled-run results outlive the Job: a ring of 5 ConfigMaps, the oldest overwritten (real emulator)."""

import base64
import gzip
import json

from helpers.kube import emulator

from chaosstream.clients.kube import Cluster
from chaosstream.journal.results import RESULT_LABEL, save_result, slot_names


def test_results_fill_five_slots_then_overwrite_the_oldest(tmp_path, monkeypatch):
    kubeconfig = tmp_path / "kubeconfig"
    journal = tmp_path / "journal.json"
    journal.write_text(json.dumps({"status": "completed", "run": ["x" * 1000]}))
    junit = tmp_path / "junit.xml"
    junit.write_text("<testsuites/>")
    with emulator(kubeconfig, "streamspace"):
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
        cluster = Cluster(None)
        names = [
            save_result(cluster, "streamspace", [journal, junit], f"verdict: {i} run {i}\n", i % 8, "exp")
            for i in range(7)
        ]
        assert names == slot_names() + slot_names()[:2]
        listed = cluster.core.list_namespaced_config_map("streamspace", label_selector=RESULT_LABEL).items
        assert len(listed) == 5
        first = cluster.core.read_namespaced_config_map("chaosstream-result-1", "streamspace")
        assert (
            first.data["verdict.txt"] == "verdict: 5 run 5\n"
            and first.metadata.labels["chaosstream.io/verdict"] == "5"
        )
        assert first.data["junit.xml"] == "<testsuites/>"
        packed = base64.b64decode(first.binary_data["journal.json.gz"])
        assert json.loads(gzip.decompress(packed))["status"] == "completed"
