"""Hatchling build hook: make editable installs discoverable by `chaos discover`.

chaoslib maps a distribution to its import name with `importlib.metadata.packages_distributions()`,
which (Python 3.11) infers top-level names from the `.py` files a wheel's RECORD lists. An editable
wheel lists only a `.pth` file, so discovery fails ("no top-level package name could be determined").
The editable wheel therefore also installs `chaosstream/_editable.py`; the source tree's regular package
still wins every import (a directory without `__init__.py` is only a namespace-package candidate).
"""

from typing import Any, Dict

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class EditableDiscoveryHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: Dict[str, Any]) -> None:
        if self.target_name == "wheel" and version == "editable":
            build_data["force_include_editable"]["chaosstream/_editable.py"] = "chaosstream/_editable.py"
