"""``python -m kamkmserve_sim``: serve the simulated kamkmserve in the foreground."""

from __future__ import annotations

import argparse

from kamkmserve_sim.config import SimConfig
from kamkmserve_sim.scenarios import SCENARIOS
from kamkmserve_sim.server import run_forever


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m kamkmserve_sim", description=__doc__)
    parser.add_argument("--scenario", default="healthy", choices=sorted(SCENARIOS))
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--rps", type=float, default=20.0, help="simulated user requests per second")
    parser.add_argument("--rate-limit", type=int, default=100, help="API requests per minute per IP")
    parser.add_argument("--as-is", action="store_true",
                        help="request/DB metrics silent, exactly like the deployed app")
    parser.add_argument("--onset", type=float, default=2.0, help="seconds until the scenario's incident")
    parser.add_argument("--virtual-time", action="store_true",
                        help="no background users; time moves only through POST /_sim/time/advance")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000)
    args = parser.parse_args(argv)
    run_forever(SimConfig(
        scenario=args.scenario, seed=args.seed, rps=args.rps, rate_limit=args.rate_limit,
        request_metrics=not args.as_is, onset_s=args.onset, virtual_time=args.virtual_time,
        host=args.host, port=args.port,
    ))


if __name__ == "__main__":
    main()
