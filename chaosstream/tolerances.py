"""Probe-tolerance helpers for steady-state hypotheses.

Chaos Toolkit's `range` tolerance needs literal numbers, so an objective taken from configuration
(`${reconnect_objective}`) cannot be a bound. These functions are used as `"type": "probe"`
tolerances: they receive the probe's output as `value`, and their arguments are substituted from
configuration. Example::

    "tolerance": {"type": "probe", "name": "reconnect-within-objective",
                  "provider": {"type": "python", "module": "chaosstream.tolerances", "func": "within",
                               "arguments": {"target": "elapsed_s", "upper": "${reconnect_objective}"}}}
"""

import importlib
import logging
import math
import time
from decimal import Decimal, InvalidOperation
from typing import Any, Dict, List

from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration, Secrets

__all__ = ["within", "equals", "all_true", "consecutive"]

logger = logging.getLogger("chaostoolkit")

_UNITS = {"s": 1.0, "ms": 0.001, "min": 60.0, "count": 1.0, "%": 1.0}


def _target(value: Any, target: str = None) -> Any:
    if target is None or target == "":
        return value
    current = value
    for part in str(target).split("."):
        if isinstance(current, dict) and part in current:
            current = current[part]
        else:
            raise ActivityFailed(f"The probe output has no '{target}' to check (output: {str(value)[:200]}).")
    return current


def _number(name: str, raw: Any) -> float:
    if raw is None or raw == "":
        return math.nan
    try:
        return float(Decimal(str(raw)))
    except (InvalidOperation, ValueError):
        raise ActivityFailed(f"Tolerance argument '{name}' must be a number, not {raw!r}.") from None


def within(
    value: Any = None,
    target: str = None,
    lower: float = None,
    upper: float = None,
    unit: str = "s",
    value_unit: str = "s",
) -> bool:
    """True when the probe value (or its `target` key, dotted for nesting) lies in [`lower`, `upper`].

    Bounds are in `unit` and the value in `value_unit` (`s`, `ms`, `min`, `count`, `%`), so
    `{"target": "latency_ms", "upper": 0.5, "unit": "s", "value_unit": "ms"}` checks ≤ 500 ms.
    A missing bound is open. Logs the comparison so the journal's log tells why it failed.
    """
    if unit not in _UNITS or value_unit not in _UNITS:
        raise ActivityFailed(f"Tolerance 'unit'/'value_unit' must be one of {', '.join(_UNITS)}.")
    measured = _target(value, target)
    if isinstance(measured, bool) or not isinstance(measured, (int, float)):
        logger.info("tolerance within: %s is not a number (%r)", target or "value", measured)
        return False
    seconds = float(measured) * _UNITS[value_unit]
    lo = _number("lower", lower) * _UNITS[unit]
    hi = _number("upper", upper) * _UNITS[unit]
    ok = (math.isnan(lo) or seconds >= lo) and (math.isnan(hi) or seconds <= hi)
    logger.info(
        "tolerance within: %s=%s%s in [%s, %s]%s -> %s",
        target or "value",
        measured,
        value_unit,
        lower,
        upper,
        unit,
        ok,
    )
    return ok


def equals(value: Any = None, target: str = None, expected: Any = None) -> bool:
    """True when the probe value (or its `target` key) equals `expected` (strings compared as text, so a
    substituted `"${n}"` matches the number n)."""
    measured = _target(value, target)
    if isinstance(measured, (int, float)) and not isinstance(measured, bool) and isinstance(expected, str):
        try:
            return float(measured) == float(expected)
        except ValueError:
            return False
    return measured == expected or str(measured) == str(expected)


def all_true(value: Any = None, keys: List[str] = None) -> bool:
    """True when every named key of the probe's dict output is truthy (all keys when none are named)."""
    if not isinstance(value, dict):
        return bool(value)
    names = keys or list(value)
    return all(bool(_target(value, k)) for k in names)


def consecutive(
    value: Any = None,
    func: str = None,
    module: str = "chaosstream.probes",
    arguments: Dict[str, Any] = None,
    expect: Any = True,
    target: str = None,
    samples: int = 3,
    interval: float = 1.0,
    failure_threshold: int = 1,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> bool:
    """Flap-resistant check: the first sample is the hypothesis probe's own output; the probe
    `module.func(**arguments)` is then sampled `samples - 1` more times, `interval` seconds apart.
    Passes unless `failure_threshold` samples (or more) differ from `expect` (on `target` if given),
    in the spirit of Chaos Mesh's failureThreshold.
    """
    if not func:
        raise ActivityFailed("Tolerance 'consecutive' needs 'func': the probe to sample again.")
    if samples < 1 or failure_threshold < 1:
        raise ActivityFailed("Tolerance 'consecutive' needs 'samples' ≥ 1 and 'failure_threshold' ≥ 1.")
    try:
        probe = getattr(importlib.import_module(module), func)
    except (ImportError, AttributeError):
        raise ActivityFailed(f"Tolerance 'consecutive' cannot find probe {module}.{func}.") from None
    kwargs = dict(arguments or {})
    import inspect

    params = inspect.signature(probe).parameters
    if "configuration" in params:
        kwargs["configuration"] = configuration
    if "secrets" in params:
        kwargs["secrets"] = secrets
    failures = 0
    observed = [value]
    for index in range(samples):
        current = value if index == 0 else probe(**kwargs)
        if index:
            observed.append(current)
        if not equals(current, target, expect):
            failures += 1
            if failures >= failure_threshold:
                logger.info("tolerance consecutive: %d failure(s) in %s", failures, observed)
                return False
        if index < samples - 1:
            time.sleep(interval)
    return True
