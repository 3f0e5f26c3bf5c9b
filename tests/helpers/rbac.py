"""The CronJob's identity in a sandbox: apply its ServiceAccount and Role (kubectl, admin kubeconfig),
mint its token (`kubectl create token`), write a kubeconfig that uses it; read the emulator's RBAC trace."""

import json
import subprocess
import urllib.request
from pathlib import Path
from typing import Dict, List, Set, Tuple

import yaml

from helpers import ROOT

DEPLOY = ROOT / "deploy" / "kubernetes"
SA = "chaosstream-runner"


def kubectl(kubeconfig: str, *args: str, stdin: str = None) -> str:
    proc = subprocess.run(
        ["kubectl", "--kubeconfig", kubeconfig, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, f"kubectl {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def service_account_kubeconfig(admin_kubeconfig: str, out: Path, namespace: str = "streamspace") -> Path:
    """Apply serviceaccount.yaml + rbac.yaml and return a kubeconfig authenticating as the ServiceAccount."""
    kubectl(
        admin_kubeconfig, "apply", "-f", str(DEPLOY / "serviceaccount.yaml"), "-f", str(DEPLOY / "rbac.yaml")
    )
    token = kubectl(admin_kubeconfig, "create", "token", SA, "-n", namespace).strip()
    config = yaml.safe_load(Path(admin_kubeconfig).read_text())
    for user in config["users"]:
        user["user"] = {"token": token}
    out.write_text(yaml.safe_dump(config))
    return out


def trace(admin_kubeconfig: str) -> Dict[str, List[List[str]]]:
    config = yaml.safe_load(Path(admin_kubeconfig).read_text())
    server = config["clusters"][0]["cluster"]["server"]
    token = config["users"][0]["user"]["token"]
    req = urllib.request.Request(f"{server}/debug/rbac-trace", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


Grant = Tuple[str, str, str]  # (verb, "resource[.group][/subresource]", name or "")


def role_grants(namespace_role_file: Path = DEPLOY / "rbac.yaml") -> Set[Grant]:
    """Every (verb, resource, resourceName) the Role grants ("" name: any)."""
    (role,) = [d for d in yaml.safe_load_all(namespace_role_file.read_text()) if d and d["kind"] == "Role"]
    out: Set[Grant] = set()
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                base, _, sub = resource.partition("/")
                qualified = f"{base}.{group}" if group else base
                key = f"{qualified}/{sub}" if sub else qualified
                for verb in rule["verbs"]:
                    for name in rule.get("resourceNames") or [""]:
                        out.add((verb, key, name))
    return out


def used(calls: List[List[str]]) -> Set[Grant]:
    """The trace as (verb, resource[/sub], name) calls."""
    return {(v, f"{r}/{s}" if s else r, n) for v, r, s, n in calls}


def unused_grants(grants: Set[Grant], calls: Set[Grant]) -> Set[Grant]:
    """Grants no recorded call needed (a name-less grant is used by a call on any name)."""
    out = set()
    for verb, resource, name in grants:
        if not any(v == verb and r == resource and (not name or n == name) for v, r, n in calls):
            out.add((verb, resource, name))
    return out
