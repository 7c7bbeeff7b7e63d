"""The GPU monitor's part in a run (``hog.gpus.monitor``): when it starts, what the
tick takes from it, and when it is given up.

- ``--min_free_memory`` / ``--exclusive``: a GPU's verdict is needed before any job is
  placed on it, so the monitor starts with the run and looks once before the first job
  (``start_checked``; no ``nvidia-smi`` or NVML is a usage error).
- Otherwise it only gives figures (each job's GPU memory and utilisation, the GPUs'
  history) and what others hold for ``memory=`` jobs. It starts once the first jobs
  are sent (``start_due``), or on the tick after a second at the latest: the first
  job does not wait for its imports, NVML's start or two ``nvidia-smi`` runs (up to
  10 s each). It looks at once in its own thread; the jobs already running are
  tracked from then on. A ``memory=`` job placed before that first look waits for it
  (``look_now``), as it always did. A monitor whose first look found nothing to ask
  is dropped on the tick: no figures, no cost.
"""
from hog.backends.base import LocalCapacity
from hog.engine.state import RunState
from hog.errors import UsageError
from hog.state import gpulog

DUE_S = 1.0     # seconds after the start at which the monitor starts even with no job sent
LOOK_S = 30.0   # a memory= job waits this long at most for the first look (2 x 10 s smi)


def checks(st: RunState) -> bool:
    return st.cfg.min_free_memory is not None or st.cfg.exclusive


def wanted(st: RunState) -> bool:
    """Local GPU slots, or checks (which a Ray run refuses earlier, with its reason)."""
    return checks(st) or bool(st.cfg.slots) and isinstance(st.sched, LocalCapacity)


def start_checked(st: RunState) -> None:
    """The monitor for the checks: started now, its first look before this returns."""
    from hog.gpus.monitor import GpuMonitor
    st.monitor = GpuMonitor(st.cfg.min_free_memory, st.cfg.exclusive)
    if st.monitor.reader is not None:
        st.monitor.start()
    if st.monitor.error:
        st.monitor.stop()
        raise UsageError(f"--min_free_memory/--exclusive need nvidia-smi: "
                         f"{st.monitor.error}")
    _apply(st)


def start_due(st: RunState) -> None:
    """The figures-only monitor, started (its first look in its thread) and told of the
    jobs already running."""
    from hog.gpus.monitor import GpuMonitor
    st.monitor_due_by = None
    monitor = GpuMonitor(st.cfg.min_free_memory, st.cfg.exclusive, open_now=False)
    for slot, pid in st.pids.items():
        running = st.progress.running.get(slot)
        monitor.track(pid, running.gpus.split(",") if running and running.gpus else ())
    monitor.ours = frozenset(st.pids.values())
    monitor.start(look_first=False)
    st.monitor = monitor


def look_now(st: RunState) -> None:
    """A ``memory=`` job is to be placed: what others hold of each GPU is needed first.
    The monitor is started if it is due, and its first look waited for."""
    if st.monitor_due_by is not None:
        start_due(st)
    if st.monitor is not None and not st.monitor.looked.is_set():
        st.monitor.looked.wait(LOOK_S)
        drop_if_gave_up(st)
        if st.monitor is not None:
            _apply(st)


def drop_if_gave_up(st: RunState) -> None:
    if st.monitor is not None and st.monitor.gave_up:
        st.monitor = None


def tick(st: RunState, now: float) -> None:
    """Every tick: start the monitor if it is due, apply its latest verdicts, keep its
    looks in the sweep's GPU log."""
    if st.monitor_due_by is not None and now >= st.monitor_due_by:
        start_due(st)
    drop_if_gave_up(st)
    if st.monitor is None:
        return
    if isinstance(st.sched, LocalCapacity) and st.sched.set_unavailable(st.monitor.unavailable):
        busy = sorted(g for g in st.monitor.unavailable if g in st.cfg.slots)
        st.display.message(f"GPU(s) in use by others, no new jobs there: "
                           f"{','.join(busy) or 'none now'}")
    if isinstance(st.sched, LocalCapacity):
        st.sched.set_foreign_memory(st.monitor.foreign)
    gpulog.append_looks(st.layout, st.monitor.take_history())


def _apply(st: RunState) -> None:
    assert st.monitor is not None
    if isinstance(st.sched, LocalCapacity):     # --backend ray refuses the checks
        st.sched.set_unavailable(st.monitor.unavailable)
        st.sched.set_foreign_memory(st.monitor.foreign)
