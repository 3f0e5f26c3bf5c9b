"""A strict reading of the OpenMetrics text format (the parts `chaosstream history --openmetrics` uses)."""

import math
import re
from typing import Dict, List, Tuple

_METRIC = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
_SAMPLE_RE = re.compile(rf"^({_METRIC})(\{{(?:{_LABEL}(?:,{_LABEL})*)?\}})? (\S+)$")


def validate_openmetrics(text: str) -> Dict[str, List[Tuple[str, float]]]:
    """A strict reading of the OpenMetrics text format (the parts this output uses); returns family ->
    [(labels, value)]. Raises AssertionError on any violation."""
    assert text.endswith("# EOF\n") and text.count("# EOF") == 1, "must end with exactly one '# EOF'"
    families: Dict[str, List[Tuple[str, float]]] = {}
    types: Dict[str, str] = {}
    current = None
    seen_done = set()
    for line in text[: -len("# EOF\n")].split("\n")[:-1]:
        assert line, "no blank lines"
        if line.startswith("#"):
            kind, name, rest = (line.split(" ", 3) + [""])[1:4]
            assert kind in ("TYPE", "UNIT", "HELP") and re.fullmatch(_METRIC, name), line
            if kind == "TYPE":
                assert name not in types, f"family {name} declared twice"
                assert rest in ("gauge", "counter", "info", "stateset", "unknown"), line
                if current:
                    seen_done.add(current)
                types[name], current = rest, name
                families[name] = []
            else:
                assert name == current, f"{kind} of {name} outside its family"
                if kind == "UNIT":
                    assert name.endswith("_" + rest), "a unit must be the suffix of the name"
            continue
        match = _SAMPLE_RE.match(line)
        assert match, f"not a sample line: {line!r}"
        name, labels, value = match.groups()
        assert name == current and name not in seen_done, f"sample {name} outside its family"
        assert types[name] == "gauge" and not name.endswith(("_total", "_created"))
        number = float(value)
        assert math.isfinite(number) or value in ("NaN", "+Inf", "-Inf"), line
        assert (labels or "") not in [lab for lab, _ in families[name]], f"duplicate label set: {line}"
        families[name].append((labels or "", number))
    return families
