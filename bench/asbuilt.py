"""What the experiments report against StreamSpace v2 as built: run each on `--profile as-built`.

    python bench/asbuilt.py [--update-readme]

Prints, per experiment, the verdict and the probes that decided it, with the as-built behaviour that
explains a deviation (evidence: ../shared/streamspace-as-built.md §2). A tool failure (verdict 3, 6 or
7) or a deviation this table cannot explain makes it exit 1 and leaves README alone: every finding in
the table has to be a StreamSpace behaviour.
"""

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from chaosstream.sandbox.matrix import EXPERIMENTS, run_cell  # noqa: E402

APPROVAL = (
    "new pods are new agents (`$(AGENT_ID_PREFIX)-$(POD_NAME)`, chart `k8s-agent-deployment.yaml:45-52`) that "
    "register `pending` and stay off their WebSocket until an admin approves them "
    "(`api/internal/handlers/agents.go:134-160`, `agents/k8s-agent/main.go:551-610`)"
)
# experiment -> (the first deciding probe this behaviour explains, the finding)
FINDINGS = {
    "agent-disconnect.json": (
        "agent-reconnect-time",
        f"After the restart {APPROVAL}; the running sessions stay assigned to the old, offline id.",
    ),
    "command-retry.json": (
        "agent-reconnect-time",
        f"After the pod kill {APPROVAL}; the `stop_session` commands stay `pending` for the old id (never "
        "re-sent, contract §3.6) and the sessions stay `terminating`: the agent's `complete` only updates "
        "`agent_commands` (`api/internal/handlers/agent_websocket.go:420-440`).",
    ),
    "total-agent-outage.json": (
        "agent-back-time",
        f"After the scale-up {APPROVAL}: no session can start until an admin approves them.",
    ),
}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--update-readme", action="store_true", help="write the table into README.md")
    args = parser.parse_args()
    rows, bad = [], []
    for experiment in EXPERIMENTS:
        result = run_cell(experiment, (), experiments_dir=ROOT / "experiments", profile="as-built")[0]
        probes = [d.split(":", 1)[-1] for d in result.deciding]
        name = experiment[:-5]
        if result.verdict == 0:
            rows.append(f"| {name} | 0 passed | — | — |")
            continue
        expected = FINDINGS.get(experiment)
        if result.verdict != 1 or expected is None or expected[0] not in probes:
            bad.append(f"{name}: verdict {result.verdict} {result.label} {probes}")
            continue
        rows.append(f"| {name} | 1 deviated | `{'`, `'.join(probes)}` | {expected[1]} |")
    table = "\n".join(["| experiment | verdict | deciding probes | finding (StreamSpace v2 as built) |",
                       "|---|---|---|---|", *rows])  # fmt: skip
    print(table)
    for line in bad:
        print(f"UNEXPLAINED (not put in README): {line}")
    if args.update_readme and not bad:
        readme = ROOT / "README.md"
        text = re.sub(
            r"<!-- asbuilt:start -->.*?<!-- asbuilt:end -->",
            lambda _: f"<!-- asbuilt:start -->\n{table}\n<!-- asbuilt:end -->",
            readme.read_text(),
            flags=re.S,
        )
        readme.write_text(text)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
