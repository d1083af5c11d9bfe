"""``python -m tests.orchestration.orch_stack_main HOST PORT``: run_stack with a stand-in receiver app.

The app exposes what a test needs to see from outside the process: the starter's health and loaded deployments
(``GET /healthz``) and a way to start a run through it (``POST /start`` with ``{"deployment", "parameters",
"key"}``, and ``"here": true`` to have this process execute it).
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from remediation.orchestration.stack import run_stack
from remediation.settings import Settings


def app_factory(starter: Any) -> Starlette:
    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"healthy": starter.healthy(), "loaded": sorted(starter.loaded())})

    async def start(request: Request) -> JSONResponse:
        body = await request.json()
        # "here": executed by this process, never by a runner of another stack polling the deployment (the runner
        # wins ~1 start in 60 otherwise), for a test that kills this process and needs the run to die with it. The
        # run is then born Pending (WarmExecutor claim=False), which no runner picks up.
        starter.claim = not body.get("here", False)
        run_id = await starter.start(body["deployment"], body["parameters"], body["key"])
        return JSONResponse({"run_id": run_id})

    async def capture(request: Request) -> JSONResponse:
        import sentry_sdk

        count = int((await request.json())["n"])
        for i in range(count):
            sentry_sdk.capture_message(f"queued before shutdown {i}")
        return JSONResponse({"queued": count, "sentry": sentry_sdk.get_client().is_active()})

    return Starlette(routes=[Route("/healthz", healthz), Route("/start", start, methods=["POST"]),
                             Route("/capture", capture, methods=["POST"])])


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    sys.exit(run_stack(Settings(), host=sys.argv[1], port=int(sys.argv[2]), app_factory=app_factory))
