"""``RunState``: what the parts of the runner share.

One object per run, created whole by the ``Runner`` (every attribute here, none
added later), and passed to the functions of ``sweep``, ``intake``, ``dispatch``,
``outcomes`` and ``control``, which read and change it. It holds:

- what the runner was built with: config, job-folder layout, fork context, signal
  flags, backend, scheduler, display factory;
- what set-up opens: the store and this runner's row in it, the producer process
  and its queue, the GPU monitor, the neighbours registry, the hooks, the display;
- the job path's bookkeeping: ``ready`` (queued jobs fetched from the store),
  ``claimed`` (claimed this turn, sent once committed), ``running``, ``pids`` and
  ``next`` (handed ahead, see ``dispatch.predispatch``) and ``promoted`` by slot,
  ``withdrawing``, ``started_due``, ``not_here``, ``waiting_deps``, ``cancelling``;
- whether hog can write (``guard``, ``slots_blocked``, jobs ``held`` from the source
  until the store takes them, ``root_gone``: see ``engine.writable``);
- the source's counters (``received``, ``ingested``, ``source_total``,
  ``base_total``, ``ahead``) and how the run is stopping (``stopping``,
  ``killing``, ``stop_reason``, ``exit_signal``).
"""
from collections import deque
from typing import Any, Callable, Dict, Iterable, List, Optional, Set, Tuple

from hog.backends.base import Admission, Backend
from hog.config import RunConfig
from hog.engine.health import Health
from hog.engine.neighbours import Registry
from hog.engine.progress import Display, DisplayFactory, Progress
from hog.messages import Dispatch
from hog.model import Job, Outcome
from hog.signals import SignalFlags
from hog.state.diskguard import WriteGuard
from hog.state.jobdir import Layout
from hog.state.store import JobRow, Store


class PendingDisplay:
    """The display until the real one starts: its messages wait in ``notices`` and
    are shown once it has started."""

    def __init__(self, notices: List[str]):
        self.notices = notices

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def idle(self) -> None:
        pass

    def job_started(self, slot: int, name: str, gpus: str, pid: int) -> None:
        pass

    def job_ended(self, o: Outcome) -> None:
        pass

    def message(self, text: str) -> None:
        self.notices.append(text)


READY_AHEAD = 64    # queued jobs read ahead into ``RunState.ready`` (the queue's head)
DEEP = 6            # jobs handed ahead to a busy slot whose last job was short
SHORT_S = 0.05      # a job that ran less than this is short
CALM = 20           # jobs that succeeded in a row before any slot is handed DEEP: around
                    # failures the runner chooses each next job (a failure gives back all
                    # a slot holds, and six at a time would bunch the failing jobs on the
                    # slots that free first, which looks like a sick GPU to quarantine)
Entry = Tuple[JobRow, Job]


class Ready(deque):  # (of Entry)
    """``RunState.ready``: the queue's head, (row, job) in run order, which also counts
    its CPU-only jobs (``cpu_jobs``), so that a turn with only CPU slots free learns
    that none fits without going through every entry (each turn of a GPU sweep)."""

    def __init__(self) -> None:
        super().__init__()
        self.cpu_jobs = 0

    def append(self, entry: Entry) -> None:
        super().append(entry)
        self.cpu_jobs += not entry[1].gpus

    def extend(self, entries: Iterable[Entry]) -> None:
        for entry in entries:
            self.append(entry)

    def insert(self, i: int, entry: Entry) -> None:
        super().insert(i, entry)
        self.cpu_jobs += not entry[1].gpus

    def remove(self, entry: Entry) -> None:
        super().remove(entry)
        self.cpu_jobs -= not entry[1].gpus

    def pop(self) -> Entry:  # type: ignore[override]  # (as deque.pop: no index)
        entry = super().pop()
        self.cpu_jobs -= not entry[1].gpus
        return entry

    def popleft(self) -> Entry:
        entry = super().popleft()
        self.cpu_jobs -= not entry[1].gpus
        return entry

    def clear(self) -> None:
        super().clear()
        self.cpu_jobs = 0


class RunState:
    """One run's shared state (see the module's docstring)."""

    def __init__(self, config: RunConfig, layout: Layout, ctx: Any, flags: SignalFlags,
                 backend: Backend, sched: Admission, make_display: DisplayFactory):
        self.cfg = config
        self.layout = layout
        self.ctx = ctx
        self.flags = flags
        self.backend = backend
        self.sched = sched
        self.make_display = make_display
        self.memory_known = bool(config.gpu_memory)
        self.progress = Progress(slots=list(config.slots), layout=layout,
                                 title=config.output_dir)
        # set-up
        self.notices: List[str] = []    # shown once the display has started
        self.display: Display = PendingDisplay(self.notices)
        self._store: Optional[Store] = None
        self.runner_id = 0              # this runner's row in the store, once registered
        self.joiner = False             # other runners were active on this queue
        self.created_root = False       # this run created the output directory
        self.resume = False
        self.producer: Any = None
        self.queue: Any = None          # the producer's queue (with the producer)
        self.queue_poll: Any = None     # a select.poll of its pipe (intake.source_ready)
        self.taken_ahead: List[Job] = []    # taken from its queue, to store next (intake)
        self.idle_take = 0                  # jobs an idle runner stores next (intake.take)
        self.monitor: Any = None        # the GPU monitor, for local slots (engine.gpuwatch)
        self.monitor_due_by: Optional[float] = None     # when it starts at the latest
        self.registry = Registry()      # for those started with --wait_for_running
        self.hooks: Any = None          # --on_job_end / --on_finish only
        # the job path
        self.ready = Ready()            # the queue's head: READY_AHEAD jobs
        self.claimed: List[Dispatch] = []   # claimed this turn, sent once committed
        self.running: Dict[int, Dispatch] = {}
        self.pids: Dict[int, int] = {}
        self.next: Dict[int, List[Dispatch]] = {}   # by busy slot: its next jobs, handed
                                                    # ahead, in the order it starts them
        self.short: Set[int] = set()    # slots whose last job was short: handed more ahead
        self.calm = 0                   # jobs that succeeded since the last that did not
        self.claims_ahead = False       # claim in blocks (engine.reserve): the run loop's
        self.reserve: List[Tuple[JobRow, Job, int]] = []    # claimed ahead: row, job, attempt
        self.reserve_size = 0
        self.reserve_used = 0           # taken from the reserve since the last tick
        self.withdrawing: Dict[int, str] = {}   # job id -> why it is being taken back
        self.started_due: List[Any] = []        # (Started, handed), stored with the next write
        self.promoted: Dict[int, int] = {}      # by slot: the handed job it runs now, whose
                                                # Started is awaited (its row still 'handed')
        self.alone_at: Optional[float] = None   # when ``alone`` was last asked (a tick)
        self.alone = True                       # no other live runner on this queue
        self.not_here: Set[int] = set()     # queued jobs this runner can never run
        self.left: Dict[int, str] = {}      # of those, left queued: what each waits for
        self.runner_set: Any = None         # the active runners when they were decided
        self.waiting_deps: Set[int] = set()
        self.cancelling: Set[int] = set()
        self.started_any = False
        self.fatal = ""
        # runs again without using a retry (engine/reruns.py): a GPU's health, ...
        self.health = Health(config.quarantine_after, config.quarantine_within)
        self.free: Dict[int, int] = {}      # job -> its attempts that used no retry
        self.reruns: Dict[int, str] = {}    # job -> why its next attempt runs (INFO)
        self.shared: Set[int] = set()       # running jobs that shared a GPU with another
        self.oom_alone: Set[int] = set()    # jobs whose next attempt runs alone (OOM)
        self.oom_done: Set[int] = set()     # jobs given their out-of-memory rerun
        # hog's own writes (the disk full, read-only, the output directory gone)
        self.guard = WriteGuard(config.output_dir, lambda text: self.display.message(text))
        self.slots_blocked: Dict[int, str] = {}     # slots that cannot write their folder
        self.held: Optional[Tuple[List[Job], Optional[str]]] = None  # read, not yet stored
        self.root_gone = False
        self.folders_due: List[Callable[[], object]] = []  # the runner's folder writes refused
        # the source
        self.source_done = config.source is None
        self.source_error = ""
        self.producer_exited = False
        self.ingested = [0, 0, 0]   # added, queued again, skipped (succeeded)
        self.received = 0           # jobs taken from the producer
        self.source_total: Optional[int] = None   # jobs in the source, once counted
        self.base_total = 0         # finished + running + queued in the store
        self.ahead = 0              # queued jobs in the store not yet started (estimate)
        # stopping, ticks
        self.stopping = False       # first Ctrl-C / hog stop: start nothing new
        self.killing = False        # second Ctrl-C / SIGTERM / hog stop --now
        self.stop_reason = ""
        self.exit_signal = 0
        self.detached = False
        self.next_tick = 0.0
        self.next_heartbeat = 0.0
        self.orphans_seen: Dict[int, float] = {}   # job id -> when a busy writer was seen
        self.others_running = False
        self.data_version: Optional[int] = None

    @property
    def store(self) -> Store:
        """The queue's store, opened by ``sweep.open_store`` before anything else."""
        assert self._store is not None, "the store is not open yet"
        return self._store

    @store.setter
    def store(self, store: Store) -> None:
        self._store = store

    @property
    def store_open(self) -> bool:
        return self._store is not None


def handed_jobs(st: RunState) -> List[Dispatch]:
    """Every job handed ahead to a busy slot, slot by slot, each slot's in its order."""
    return [d for ds in st.next.values() for d in ds]


def handed_count(st: RunState) -> int:
    return sum(len(ds) for ds in st.next.values())
