"""The app's metrics page holding exactly the requests a test names, printed by the simulator's exposition code
(the app's own, byte for byte: tests/sim/test_sim_fidelity.py)."""

from __future__ import annotations

from kamkmserve_sim.applog import AppLog
from kamkmserve_sim.clock import WallClock
from kamkmserve_sim.collector import MetricSample, MetricsCollector, RequestRecord
from kamkmserve_sim.exposition import metrics_page
from kamkmserve_sim.process import SimulatedProcess


def app_page(requests: list[tuple[str, str, int, int]]) -> str:
    """The app's metrics page holding exactly these (method, path, status, duration ms) requests, in order, as the
    simulator prints it (its exposition code is the app's, byte for byte)."""
    clock = WallClock()
    process = SimulatedProcess(clock, seed=1, ratio_low=0.45, ratio_high=0.9)
    collector = MetricsCollector(AppLog(clock, ring_size=10), clock, process)
    for method, path, status, duration in requests:
        tags = {"method": method, "path": path, "status": str(status)}
        collector.metrics.append(MetricSample("http_request_duration", duration, "ms", 0, tags))
        collector.requests.append(RequestRecord(path=path, method=method, status_code=status, duration=duration,
                                                timestamp=0))
    return metrics_page(collector)
