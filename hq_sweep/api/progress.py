"""`show_progress_bar=True`: a rich bar in a terminal or a notebook, else a plain line on
stderr every few seconds (a batch log, a pipe), and the closing summary."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from hq_sweep.queue.sweep import SweepQueue
from hq_sweep.results.progress import ProgressPrinter
from hq_sweep.results.summary import best, finished_count

Update = Callable[[], None]
PLAIN_EVERY_S = 10.0


@contextlib.contextmanager
def progress(queue: SweepQueue, total: int | None, show: bool) -> Iterator[Update]:
    """An `update()` to call often (it reads two counters); nothing when not `show`."""
    if not show:
        yield _nothing
        return
    console = Console(stderr=True)
    if not (console.is_terminal or console.is_jupyter):
        printer = ProgressPrinter(queue, total, say=_say, every_s=PLAIN_EVERY_S)
        yield printer.maybe
        printer.finish()
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[best]}"))
    with Progress(*columns, console=console) as bar:
        task = bar.add_task(queue.sweep_id, total=total, best="")

        def update() -> None:
            found = best(queue)
            shown = f"best {found['value']:.6g} (trial {found['number']})" if found else ""
            bar.update(task, completed=finished_count(queue.meta.counts()), best=shown)

        yield update
        update()


def _nothing() -> None:
    pass


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
