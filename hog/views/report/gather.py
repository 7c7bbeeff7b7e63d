"""The report's data: a ``Sweep``, read once from the store (opened read-only) and the
job folders, so that the timeline and the page are pure functions of it."""
from dataclasses import dataclass, field
from typing import Dict, FrozenSet, List, Optional, Tuple

from hog.state.gpulog import Look, read_looks
from hog.state.jobdir import Layout
from hog.state.jobread import earlier_attempts, read_info
from hog.state.reading import SweepReader
from hog.state.results import Attempt, attempts
from hog.state.rows import JobRow, RunnerRow
from hog.state.runners import runner_alive


@dataclass(frozen=True)
class Sweep:
    """A sweep as the report sees it at ``now``: its jobs, runners and attempts."""

    directory: str
    layout: Layout
    source: Optional[str]
    rows: List[JobRow]
    runners: List[RunnerRow]
    alive: FrozenSet[int]                # ids of the runners alive at ``now``
    attempts: List[Attempt]
    now: float
    health: Tuple[str, ...] = ()         # GPUs quarantined, attempts run again for free
    gpu_looks: List[Look] = field(default_factory=list)  # the GPU monitor's log
    # each runner's --gpus labels over time, (from when, labels), for runners that
    # recorded them (``hog gpus DIR SPEC`` changes them while a runner works)
    slot_history: Dict[int, List[Tuple[float, str]]] = field(default_factory=dict)


def health_lines(store: SweepReader, layout: Layout, rows: List[JobRow],
                 runners: List[RunnerRow]) -> Tuple[str, ...]:
    """One line per GPU a runner quarantined, and per attempt that ran again without
    using a retry (a quarantined GPU's, an out-of-memory failure's; from INFO)."""
    lines = [f"runner {r.id}: {why}" for r in runners
             for why in store.quarantined(r.id).values()]
    for row in rows:
        if row.attempt < 2:
            continue
        for info in [read_info(layout, row.id)] + earlier_attempts(layout, row.id):
            if info.get("rerun"):
                lines.append(f"{layout.folder_name(row.id)} attempt {info.get('attempt')}: "
                             f"{info['rerun']}")
    return tuple(lines)


def gather(store: SweepReader, layout: Layout, directory: str, now: float) -> Sweep:
    """Everything the report shows of the sweep in ``directory``, as of ``now``."""
    rows = list(store.all_rows())
    runners = store.all_runners()
    alive = frozenset(r.id for r in runners if runner_alive(r))
    return Sweep(directory=directory, layout=layout, source=store.meta("source"), rows=rows,
                 runners=runners, alive=alive, attempts=attempts(rows, runners, layout),
                 now=now, health=health_lines(store, layout, rows, runners),
                 gpu_looks=read_looks(layout), slot_history=store.slot_history())
