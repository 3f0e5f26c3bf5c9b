"""What `chaos discover --no-install` tells users about the catalog: types, docstrings, argument order."""

import inspect
import json
import os
import subprocess
import sys

import pytest
from helpers import ROOT
from helpers.chaos import chaos

from chaosstream import actions, probes


@pytest.fixture(scope="module")
def discovery(tmp_path_factory):
    # `chaos discover` maps the distribution to its import name through the installed file list, which an
    # editable install lacks: discover a regular (non-editable) install of this tree, as users get it.
    tmp = tmp_path_factory.mktemp("discover")
    target = tmp / "site"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(target), str(ROOT)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    out = tmp / "discovery.json"
    proc = chaos(
        "discover", "--no-install", "--no-system-info", "--discovery-path", str(out), "chaostoolkit-streamspace",
        env=dict(os.environ, PYTHONPATH=str(target)), cwd=tmp, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0 and out.exists(), proc.stdout + proc.stderr
    return json.loads(out.read_text())


def test_discovery_lists_every_activity_with_portable_types_and_docs(discovery):
    found = {a["name"]: a for a in discovery["activities"]}
    assert set(probes.__all__) <= set(found) and set(actions.__all__) <= set(found)
    for name in probes.__all__:
        assert found[name]["type"] == "probe", name
        assert found[name]["mod"].startswith("chaosstream.probes"), name
    for name in actions.__all__:
        assert found[name]["type"] == "action", name
    for activity in found.values():
        assert activity["doc"] and len(activity["doc"]) > 40, f"{activity['name']} has no real docstring"
        names = [arg["name"] for arg in activity["arguments"]]
        for arg in activity["arguments"]:
            assert arg.get("type") not in (None, "object"), (
                f"{activity['name']}({arg['name']}) maps to object"
            )
        tail = [n for n in names if n in ("configuration", "secrets")]
        assert tail == ["configuration", "secrets"], f"{activity['name']}: {names}"
        assert names[-2:] == ["configuration", "secrets"], f"{activity['name']}: {names}"


@pytest.mark.parametrize("module", [probes, actions], ids=["probes", "actions"])
def test_signatures_are_discovery_safe(module):
    allowed = {str, int, float, bool}
    for name in module.__all__:
        func = getattr(module, name)
        assert inspect.getdoc(func), name
        params = list(inspect.signature(func).parameters.values())
        assert [p.name for p in params[-2:]] == ["configuration", "secrets"], name
        for p in params[:-2]:
            assert p.kind is p.POSITIONAL_OR_KEYWORD, (name, p.name)
            ann = p.annotation
            assert ann is not p.empty and not isinstance(ann, str), (name, p.name)
            assert ann in allowed or getattr(ann, "_name", None) in ("Dict", "List"), (name, p.name, ann)
            if p.default is not p.empty and p.default is not None:
                assert isinstance(p.default, ann if ann in allowed else (dict, list)) or (
                    ann is float and isinstance(p.default, int)
                ), (name, p.name, p.default)
