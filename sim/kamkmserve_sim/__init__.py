"""A simulated kamkmserve with the platform around it (deploys, edge, logs, error tracking).

Faithful to the real app's wire formats (see docs/reference/kamkmserve.md and the captured fixtures);
used by the demo, the tests and the benchmarks in place of a live deployment.
"""

from kamkmserve_sim.app import create_app
from kamkmserve_sim.config import SimConfig
from kamkmserve_sim.scenarios import SCENARIOS
from kamkmserve_sim.server import SimServer, run_forever

__all__ = ["SCENARIOS", "SimConfig", "SimServer", "create_app", "run_forever"]
