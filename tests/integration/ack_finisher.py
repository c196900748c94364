"""A bare client that claims trials and records results one at a time, printing each trial's
number only once the server has acknowledged its result. It leaves when the server goes.

`python ack_finisher.py URL SWEEP NAME`: the durability test kills the server under it and
then checks that every number printed was kept.
"""

from __future__ import annotations

import sys
import time

from hq_sweep.errors import TransportError
from hq_sweep.messages import TrialOutcome, TrialState
from hq_sweep.queue.client import connect
from hq_sweep.queue.sweep import SweepQueue
from hq_sweep.queue.trials import Finish


def main(url: str, sweep: str, name: str) -> int:
    queue = SweepQueue(connect(url, socket_timeout=2.0), sweep)
    try:
        while True:
            claims = queue.trials.claim(name, 1, lease_s=30)
            if not claims:
                time.sleep(0.005)  # the controller is asking more
                continue
            number, attempt = claims[0].task.number, claims[0].attempt
            outcome = TrialOutcome(number, attempt, TrialState.COMPLETE, values=[float(number)],
                                   worker=name)
            if queue.trials.finish([Finish(outcome, ended_at=time.time())]) == [True]:
                print(number, flush=True)  # acknowledged: the server replied OK
    except TransportError:
        return 0  # the server is gone: what was printed is what it acknowledged


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
