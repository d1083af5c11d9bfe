"""Alert intake: an ASGI receiver that turns Alertmanager, Sentry and generic alerts into incidents and runs.

authenticate (``auth``) → read and parse (``wire``) → normalise per source (``alertmanager``, ``sentry``,
``generic``) → route (``routing``, data in ``routes.yaml``) → dedupe into incidents (``dedupe`` and
``Store.ingest_alerts``, one transaction per delivery) → start runs (``service``). :func:`create_app` wires it;
see docs/intake.md.
"""

from remediation.intake.app import create_app
from remediation.intake.routing import Route, Routes, default_routes

__all__ = ["Route", "Routes", "create_app", "default_routes"]
