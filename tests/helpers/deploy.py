"""`kubectl apply -k` of deploy/kubernetes against a sandbox, through an overlay that points config.env at
the sandbox (the one kustomize-patchable place) and the Secret chaosstream-credentials with its
credentials, as a platform SRE would do for a real cluster."""

import os
import subprocess
from pathlib import Path
from typing import Dict

from helpers import ROOT
from helpers.rbac import kubectl

DEPLOY = ROOT / "deploy" / "kubernetes"
SECRET_KEYS = ("STREAMSPACE_USERNAME", "STREAMSPACE_PASSWORD", "STREAMSPACE_DB_DSN")
NOT_CONFIG = {"KUBECONFIG", *SECRET_KEYS}


def apply_deploy(env: Dict[str, str], overlay: Path, extra: Dict[str, str] = None) -> str:
    """Create the credentials Secret, then `kubectl apply -k OVERLAY`; returns kubectl's output."""
    admin = env["KUBECONFIG"]
    overlay.mkdir(parents=True, exist_ok=True)
    config = {k: v for k, v in env.items() if k.startswith("STREAMSPACE_") and k not in NOT_CONFIG}
    config.update(extra or {})
    literals = "\n".join(f"      - {k}={v}" for k, v in sorted(config.items()))
    base = os.path.relpath(DEPLOY, overlay)
    (overlay / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"resources:\n  - {base}\n"
        "configMapGenerator:\n  - name: chaosstream-config\n    behavior: merge\n    literals:\n"
        f"{literals}\n"
    )
    secret = subprocess.run(
        ["kubectl", "create", "secret", "generic", "chaosstream-credentials", "-n", "streamspace",
         "--dry-run=client", "-o", "yaml", *[f"--from-literal={k}={env[k]}" for k in SECRET_KEYS if env.get(k)]],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    kubectl(admin, "apply", "-f", "-", stdin=secret)
    return kubectl(admin, "apply", "-k", str(overlay))
