"""One sweep's handle on Redis: the parts of the transport, each owning one concern."""

from __future__ import annotations

from rq import Queue
from rq.serializers import JSONSerializer

from hq_sweep.queue.client import Client, for_rq
from hq_sweep.queue.keys import SweepKeys
from hq_sweep.queue.lock import ControllerLock
from hq_sweep.queue.meta import SweepMeta
from hq_sweep.queue.quarantine import Quarantine
from hq_sweep.queue.reports import ReportChannel
from hq_sweep.queue.rq_jobs import screened_job_class
from hq_sweep.queue.suggests import SuggestChannel
from hq_sweep.queue.trials import TrialStore
from hq_sweep.queue.workers import WorkerRoster


class SweepQueue:
    """Everything one sweep does with Redis, for controller, workers and readers alike:
    `meta` (spec, state, counters), `lock` (the controller's), `trials` (records, claims,
    leases), `reports` (intermediate values, decisions, the controller's news),
    `suggests` (define-by-run sampling), `workers` (heartbeats) and `quarantine` (what
    readers refused). `rq_queue` carries the jobs that wake workers (each screened as rq
    loads it: `rq_jobs`)."""

    def __init__(self, connection: Client, sweep_id: str) -> None:
        self.connection = connection
        self.sweep_id = sweep_id
        self.keys = SweepKeys(sweep_id)
        self.quarantine = Quarantine(connection, self.keys)  # what readers refused
        self.rq_queue = Queue(self.keys.rq_queue, connection=for_rq(connection),
                              serializer=JSONSerializer,
                              job_class=screened_job_class(sweep_id, self.quarantine))
        self.meta = SweepMeta(connection, self.keys, self.quarantine)
        self.lock = ControllerLock(connection, self.keys)
        self.trials = TrialStore(connection, self.keys, self.rq_queue, self.quarantine)
        self.reports = ReportChannel(connection, self.keys, self.quarantine)
        self.suggests = SuggestChannel(connection, self.keys)
        self.workers = WorkerRoster(connection, self.keys)
