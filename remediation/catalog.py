"""The runbooks that exist, by name, with their flow entrypoints (``file:function``, as in prefect.yaml).

The library never imports flows at import time; ``load`` resolves an entrypoint when a command needs it.
A conformance test checks this table against prefect.yaml.
"""

from __future__ import annotations

import importlib
from typing import Any

RUNBOOKS: dict[str, str] = {
    "elevated-error-rate": "flows/elevated_error_rate.py:elevated_error_rate",
    "database-errors": "flows/database_errors.py:database_errors",
    "high-latency": "flows/high_latency.py:high_latency",
    "suspicious-upload": "flows/suspicious_upload.py:suspicious_upload",
    "auth-access": "flows/auth_access.py:auth_access",
    "rolling-restart": "flows/rolling_restart.py:rolling_restart",
}


class UnknownRunbook(KeyError):
    pass


def load(name: str) -> Any:
    try:
        entrypoint = RUNBOOKS[name]
    except KeyError:
        raise UnknownRunbook(f"unknown runbook '{name}'; known: {', '.join(sorted(RUNBOOKS))}") from None
    path, function = entrypoint.split(":")
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    return getattr(module, function)
