"""The scheduled-run manifests, runner image and CI workflow: parsed, typed with the kubernetes client's
models, RBAC checked verb by verb, the generated ConfigMap checked for staleness, and applied to the
sandbox's Kubernetes emulator."""

import importlib.util
import json
import warnings
from pathlib import Path
from typing import Any, Dict, List, Set, Tuple

import pytest
import yaml
from helpers import ROOT
from helpers.kube import emulator

DEPLOY = ROOT / "deploy" / "kubernetes"
MANIFESTS = [
    "serviceaccount.yaml",
    "rbac.yaml",
    "configmap-experiments.yaml",
    "cronjob.yaml",
    "reaper-cronjob.yaml",
]
MODELS = {
    "ServiceAccount": "V1ServiceAccount",
    "Role": "V1Role",
    "RoleBinding": "V1RoleBinding",
    "ConfigMap": "V1ConfigMap",
    "CronJob": "V1CronJob",
}
# (apiGroup, resource, resourceNames) -> verbs: exactly what chaosstream's actions, probes, controls and
# the reaper call (tests/e2e/test_rbac.py proves it against the RBAC-enforcing emulator).
EXPECTED_RULES: Dict[Tuple[str, str, Tuple[str, ...]], Set[str]] = {
    ("", "pods", ()): {"get", "list", "patch", "delete"},
    ("", "pods/exec", ()): {"get", "create"},
    ("", "pods/ephemeralcontainers", ()): {"patch"},
    ("", "persistentvolumeclaims", ()): {"get"},
    ("apps", "deployments", ("streamspace-k8s-agent",)): {"get", "patch"},
    ("apps", "deployments", ()): {"list"},
    ("networking.k8s.io", "networkpolicies", ()): {"get", "list", "create", "delete"},
    ("coordination.k8s.io", "leases", ()): {"create", "get"},  # get: the run lock and HA agents' leaders
    ("coordination.k8s.io", "leases", ("chaosstream-run-lock",)): {"update", "delete"},
    ("", "configmaps", ()): {"create", "list", "patch", "delete"},
    ("", "configmaps", tuple(f"chaosstream-result-{i}" for i in range(1, 6))): {"get", "update"},
    ("", "services", ()): {"get"},
    ("", "endpoints", ()): {"get"},
    ("discovery.k8s.io", "endpointslices", ()): {"list"},
}
LOCK_TTL_S = 600  # chaosstream.controls.safety default ttl, also the bound on fault durations


def _docs() -> List[Dict[str, Any]]:
    out = []
    for name in MANIFESTS:
        out += [d for d in yaml.safe_load_all((DEPLOY / name).read_text()) if d]
    return out


def _by_kind(kind: str) -> List[Dict[str, Any]]:
    return [d for d in _docs() if d["kind"] == kind]


def _keys_survive(original: Any, typed: Any, path: str = "") -> List[str]:
    """Keys present in the manifest but lost by the typed round trip: typos and misplaced fields."""
    lost = []
    if isinstance(original, dict):
        for key, value in original.items():
            if not isinstance(typed, dict) or key not in typed:
                lost.append(f"{path}.{key}")
            else:
                lost += _keys_survive(value, typed[key], f"{path}.{key}")
    elif isinstance(original, list):
        for i, (a, b) in enumerate(zip(original, typed or [], strict=False)):
            lost += _keys_survive(a, b, f"{path}[{i}]")
    return lost


def test_every_manifest_parses_and_has_expected_kinds() -> None:
    kinds = sorted(d["kind"] for d in _docs())
    assert kinds == sorted(["ServiceAccount", "Role", "RoleBinding", "ConfigMap", "CronJob", "CronJob"])
    for doc in _docs():
        assert doc["metadata"]["namespace"] == "streamspace"
        assert doc["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "chaosstream"
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Kustomization" and kustomization["namespace"] == "streamspace"
    assert kustomization["resources"] == MANIFESTS
    (generated,) = kustomization["configMapGenerator"]
    assert generated["name"] == "chaosstream-config" and generated["envs"] == ["config.env"]
    assert generated["options"]["disableNameSuffixHash"] is True


@pytest.mark.parametrize("kind", list(MODELS))
def test_manifests_deserialize_into_kubernetes_models(kind: str) -> None:
    from kubernetes import client

    api = client.ApiClient()
    for doc in _by_kind(kind):
        typed = api.deserialize(json.dumps(doc), MODELS[kind], "application/json")
        assert type(typed).__name__ == MODELS[kind]
        lost = _keys_survive(doc, api.sanitize_for_serialization(typed))
        assert not lost, f"{kind} fields unknown to the {MODELS[kind]} model: {lost}"


def test_role_grants_exactly_the_needed_verbs() -> None:
    (role,) = _by_kind("Role")
    granted: Dict[Tuple[str, str, Tuple[str, ...]], Set[str]] = {}
    for rule in role["rules"]:
        assert "resourceNames" not in rule or rule["resourceNames"]
        names = tuple(rule.get("resourceNames") or ())
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                granted.setdefault((group, resource, names), set()).update(rule["verbs"])
    assert granted == EXPECTED_RULES
    assert all("*" not in verbs for verbs in granted.values())
    (binding,) = _by_kind("RoleBinding")
    (account,) = _by_kind("ServiceAccount")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": "streamspace"}
    ]


def _cronjob(name: str) -> Dict[str, Any]:
    (cron,) = [c for c in _by_kind("CronJob") if c["metadata"]["name"] == name]
    return cron


def test_cronjob_checks_then_runs_chaos_then_the_verdict_and_keeps_the_result() -> None:
    cron = _cronjob("chaosstream-agent-heartbeat")
    spec = cron["spec"]
    job = spec["jobTemplate"]["spec"]
    pod = job["template"]["spec"]
    (container,) = pod["containers"]
    assert spec["concurrencyPolicy"] == "Forbid" and spec["startingDeadlineSeconds"] > 0
    assert job["backoffLimit"] == 0 and pod["restartPolicy"] == "Never"
    # the runner (and its SIGTERM rollbacks) is gone before a fault could expire
    assert job["activeDeadlineSeconds"] + pod["terminationGracePeriodSeconds"] < LOCK_TTL_S
    script = " ".join(container["args"])
    order = [
        'chaosstream check "/experiments/$exp.json"',
        "chaos --no-version-check run --control-file /experiments/controls.yaml",
        "chaosstream verdict /tmp/journal.json --junit /tmp/junit.xml",
        "chaosstream report /tmp/journal.json --markdown /tmp/report.md",
        "chaosstream history /tmp/journal.json --openmetrics /tmp/metrics.prom",
        'chaosstream save-result --verdict-file /tmp/verdict.txt --code "$code"',
    ]
    positions = [script.find(step) for step in order]
    assert -1 not in positions and positions == sorted(positions), list(zip(order, positions, strict=True))
    assert "exp=agent-heartbeat" in script and script.strip().endswith('exit "$code"')
    assert "trap" in script  # sh as PID 1 must forward SIGTERM to chaos
    refs = [e.get("configMapRef", e.get("secretRef")) for e in container["envFrom"]]
    assert refs == [{"name": "chaosstream-config"}, {"name": "chaosstream-credentials"}]
    assert not [e for e in container.get("env", []) if e["name"].startswith("STREAMSPACE_")]
    assert pod["serviceAccountName"] == _by_kind("ServiceAccount")[0]["metadata"]["name"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["experiments"]["configMap"]["name"] == "chaosstream-experiments"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_config_env_is_the_one_place_for_the_target() -> None:
    values = dict(
        line.split("=", 1)
        for line in (DEPLOY / "config.env").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert (
        values["STREAMSPACE_API_URL"].startswith("http") and values["STREAMSPACE_NAMESPACE"] == "streamspace"
    )
    assert values["CHAOSTOOLKIT_IN_POD"] == "true"
    assert not {k for k in values if "PASSWORD" in k or "DSN" in k or "TOKEN" in k}  # credentials: the Secret


def test_reaper_cronjob_heals_expired_faults_every_minute() -> None:
    cron = _cronjob("chaosstream-reaper")
    assert cron["spec"]["schedule"] == "* * * * *" and cron["spec"]["concurrencyPolicy"] == "Forbid"
    job = cron["spec"]["jobTemplate"]["spec"]
    assert job["activeDeadlineSeconds"] < 60
    (container,) = job["template"]["spec"]["containers"]
    assert container["command"][:3] == ["chaosstream", "heal", "--expired-only"]
    assert job["template"]["spec"]["serviceAccountName"] == "chaosstream-runner"
    assert container["envFrom"] == [{"configMapRef": {"name": "chaosstream-config"}}]
    # the API credentials only (to terminate recorded sessions), each optional; never the DSN
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e}
    assert set(refs) == {"STREAMSPACE_USERNAME", "STREAMSPACE_PASSWORD", "STREAMSPACE_TOKEN"}
    assert all(r["name"] == "chaosstream-credentials" and r["optional"] is True for r in refs.values())


def test_configmap_is_up_to_date_with_experiments() -> None:
    spec = importlib.util.spec_from_file_location("deploy_render", DEPLOY / "render.py")
    render = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(render)
    assert (DEPLOY / "configmap-experiments.yaml").read_text() == render.render(), (
        "deploy/kubernetes/configmap-experiments.yaml is stale: run python deploy/kubernetes/render.py"
    )
    (cm,) = _by_kind("ConfigMap")
    names = {p.name for p in (ROOT / "experiments").glob("*.json")}
    assert set(cm["data"]) == names | {"controls.yaml"}
    controls = yaml.safe_load(cm["data"]["controls.yaml"])
    assert controls["chaosstream-safety"]["provider"]["module"] == "chaosstream.controls.safety"
    assert controls["chaosstream-safety"]["provider"]["arguments"]["ttl"] == LOCK_TTL_S


def test_fault_durations_stay_within_the_bound() -> None:
    """Every experiment's self-expiring fault durations (config keys `*_duration`) are <= the lock ttl."""
    (cm,) = _by_kind("ConfigMap")
    for name, text in cm["data"].items():
        if not name.endswith(".json"):
            continue
        for key, value in (json.loads(text).get("configuration") or {}).items():
            if key.endswith("_duration"):
                default = value.get("default") if isinstance(value, dict) else value
                assert float(default) <= LOCK_TTL_S, (
                    f"{name}: {key}={default} exceeds the {LOCK_TTL_S}s bound"
                )


def test_cronjob_experiment_is_shipped() -> None:
    if not (ROOT / "experiments" / "agent-heartbeat.json").exists():
        pytest.skip("experiments/agent-heartbeat.json is not written yet")
    (cm,) = _by_kind("ConfigMap")
    assert "agent-heartbeat.json" in cm["data"]


def test_dockerfile_and_workflow() -> None:
    docker = (ROOT / "Dockerfile").read_text()
    assert docker.startswith("#") and "FROM python:3.11-slim" in docker and "pip install ." in docker
    assert "USER 10001" in docker
    flow = yaml.safe_load((ROOT / ".github" / "workflows" / "resilience.yml").read_text())
    triggers = flow.get("on", flow.get(True))  # PyYAML reads the bare key `on` as True
    assert "schedule" in triggers and "workflow_dispatch" in triggers
    steps = flow["jobs"]["game-day"]["steps"]
    runs = "\n".join(s.get("run", "") for s in steps)
    assert "chaos --no-version-check" in runs and "chaosstream verdict journal.json --junit junit.xml" in runs
    assert "STAGING_KUBECONFIG" in json.dumps(flow) and "${{ secrets" not in runs  # secrets via env only
    uploads = [s for s in steps if str(s.get("uses", "")).startswith("actions/upload-artifact")]
    assert uploads and {"journal.json", "junit.xml", "report.html"} <= set(uploads[0]["with"]["path"].split())
    assert any("junit" in str(s.get("uses", "")) for s in steps)


def test_manifests_apply_to_emulator(tmp_path: Path) -> None:
    from kubernetes import client, config, utils

    kubeconfig = tmp_path / "kubeconfig"
    with emulator(kubeconfig, "streamspace"):
        api = config.new_client_from_config(config_file=str(kubeconfig))
        applied, skipped = [], []
        for doc in _docs():
            try:
                utils.create_from_dict(api, doc, namespace="streamspace")
                applied.append(doc["kind"])
            except utils.FailToCreateError as exc:
                statuses = {getattr(e, "status", None) for e in exc.api_exceptions}
                if statuses <= {404, 405}:  # the emulator does not serve this API group/kind
                    skipped.append(f"{doc['kind']} ({doc['apiVersion']} not served by the emulator)")
                else:
                    raise
            except AttributeError as exc:  # the client has no API class for the kind
                skipped.append(f"{doc['kind']} (client cannot create it: {exc})")
        if skipped:
            warnings.warn("not applied: " + "; ".join(skipped), stacklevel=1)
        assert {"ServiceAccount", "ConfigMap"} <= set(applied), (applied, skipped)
        core = client.CoreV1Api(api)
        cm = core.read_namespaced_config_map("chaosstream-experiments", "streamspace")
        assert "controls.yaml" in cm.data
        assert core.read_namespaced_service_account("chaosstream-runner", "streamspace").metadata.name
