"""Background job pools of the simulated platform: what the Jobs lever pauses and resumes.

kamkmserve itself has no background jobs (docs/reference/kamkmserve.md §4 and §13: "no jobs exist"). The pools here
stand for the platform's worker service (an ECS worker service scaled to 0 and back, later): ``report-export`` is heavy
and adds database load, ``email-digest`` is light. Pausing a pool stops new work; it does not reach into a
transaction a worker already left open (the lock-contention scenario depends on that, as real life does).
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_WORKERS = 50


@dataclass
class JobPool:
    name: str
    workers: int
    heavy: bool
    description: str

    def public(self) -> dict[str, object]:
        return {"name": self.name, "workers": self.workers, "heavy": self.heavy, "description": self.description}


class JobPools:
    def __init__(self) -> None:
        self._pools = {
            pool.name: pool
            for pool in (
                JobPool("report-export", 2, True, "exports orders for accounting; long queries on kamkmserve_order"),
                JobPool("email-digest", 1, False, "daily digest e-mails; a few short reads"),
            )
        }

    def listing(self) -> list[dict[str, object]]:
        return [pool.public() for pool in self._pools.values()]

    def get(self, name: str) -> JobPool:
        """Raises KeyError for an unknown pool."""
        return self._pools[name]

    def set_workers(self, name: str, workers: int) -> int:
        """Set a pool's worker count (idempotent); returns the count it had before."""
        if isinstance(workers, bool) or not isinstance(workers, int) or not 0 <= workers <= MAX_WORKERS:
            raise ValueError(f"workers must be an integer between 0 and {MAX_WORKERS}")
        pool = self.get(name)
        previous, pool.workers = pool.workers, workers
        return previous

    def heavy_workers(self) -> int:
        """Workers of the heavy pools now running: each adds load to the database."""
        return sum(pool.workers for pool in self._pools.values() if pool.heavy)
