"""A GPU's health, judged from how the attempts placed on it end: quarantine.

Pure (no I/O); time comes from an injected clock, so every rule can be stepped. The
engine tells ``Health`` when an attempt starts and ends; ``ended`` answers with a
``Verdict`` when a GPU is quarantined or let back.

The rule:

- Only attempts on exactly one GPU count towards a quarantine: a multi-GPU attempt's
  failure does not say which GPU is at fault (its ending well still clears each of its
  GPUs). CPU-only attempts are not looked at.
- A *fast failure* is an attempt that failed (status ``failed``: not a timeout, not one
  hog or the user stopped) within ``within`` seconds of its start.
- A GPU's *streak* is its fast failures since its last attempt that did not fail fast
  (one that succeeded, or ran for longer than ``within``).
- A job that has failed fast on two different GPUs is the job's fault: it counts in no
  streak. So a job that fails the same way on every GPU never quarantines one.
- A GPU is quarantined once its streak holds ``after`` distinct such jobs and, since the
  streak began, another GPU that is not quarantined has shown it works: an attempt
  there ended without failing fast, or one there has been running for longer than
  ``within``; a streak long enough is judged again when that proof comes (another
  GPU's attempt ends well). When every GPU fails alike, nothing is quarantined.
- The streak's attempts are run again elsewhere without using up a retry (the engine
  does that). If one of those reruns fails fast again on its new GPU before another
  one has done well there, the job was at fault after all: the quarantine is lifted
  and the GPU serves again (its reruns' failures then count as usual).
- ``after`` or ``within`` of 0 turns quarantine off. ``release`` lets a GPU back by
  hand (``hog gpus DIR --release GPU``).

The state is the runner's own and lives only as long as it: a resumed run starts with
every GPU in service (a GPU that is still sick is quarantined again after ``after``
fast failures, each of those attempts run again for free).
"""
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Set, Tuple

from hog.model import Status

QUARANTINE_AFTER = 3
QUARANTINE_WITHIN_S = 60.0


@dataclass(frozen=True)
class Verdict:
    """``gpu`` was quarantined (``quarantined``) or let back; ``reruns``: the attempts
    (job index, attempt number) of its streak, to run again elsewhere for free. ``new``
    is False for an attempt that was still running on a GPU when it was quarantined
    and failed fast since: it runs again too, nothing else changes."""

    gpu: str
    quarantined: bool
    why: str
    reruns: Tuple[Tuple[int, int], ...] = ()
    new: bool = True


@dataclass
class _Quarantine:
    why: str
    reruns: Set[int]            # jobs rerun because of it, not yet judged
    confirmed: bool = False     # a rerun did well elsewhere


class Health:
    """The quarantine rule (see the module's docstring) for one runner's GPUs."""

    def __init__(self, after: int = QUARANTINE_AFTER, within: float = QUARANTINE_WITHIN_S,
                 clock: Callable[[], float] = time.monotonic):
        self.after = after
        self.within = within
        self.clock = clock
        self.running: Dict[int, Tuple[Tuple[str, ...], float]] = {}  # job -> gpus, start
        self.streaks: Dict[str, List[Tuple[int, int, float]]] = {}   # gpu -> job, att, start
        self.fast_on: Dict[int, Set[str]] = {}       # job -> GPUs it failed fast on
        self.last_ok: Dict[str, float] = {}          # gpu -> when an attempt last did well
        self.quarantined: Dict[str, _Quarantine] = {}

    @property
    def enabled(self) -> bool:
        return self.after > 0 and self.within > 0

    def excluded(self) -> Set[str]:
        """The GPUs no job may be placed on now."""
        return set(self.quarantined)

    def reason(self, gpu: str) -> str:
        q = self.quarantined.get(gpu)
        return "" if q is None else q.why

    # ------------------------------------------------------------ events
    def started(self, job: int, gpus: Sequence[str]) -> None:
        self.running[job] = (tuple(gpus), self.clock())

    def ended(self, job: int, attempt: int, status: Status) -> Optional[Verdict]:
        """An attempt of ``job`` ended as ``status``; a quarantine or a lifting, or None."""
        gpus, start = self.running.pop(job, ((), self.clock()))
        if not self.enabled or not gpus or status not in (Status.SUCCEEDED, Status.FAILED,
                                                          Status.TIMEOUT):
            return None
        now = self.clock()
        fast = status is Status.FAILED and now - start <= self.within
        if not fast:
            for gpu in gpus:
                self.streaks.pop(gpu, None)
                self.last_ok[gpu] = now
            verdict = self._judge_rerun(job, gpus, ok=True)
            if verdict is not None:
                return verdict
            for other in list(self.streaks):    # the proof a failing GPU's streak waited for
                if other not in gpus and other not in self.quarantined:
                    verdict = self._maybe_quarantine(other, now)
                    if verdict is not None:
                        return verdict
            return None
        if len(gpus) != 1:
            return None
        gpu = gpus[0]
        self.fast_on.setdefault(job, set()).add(gpu)
        lifted = self._judge_rerun(job, gpus, ok=False)
        if lifted is not None:
            return lifted
        if gpu in self.quarantined:
            self.quarantined[gpu].reruns.add(job)
            return Verdict(gpu, True, self.quarantined[gpu].why, ((job, attempt),), new=False)
        streak = self.streaks.setdefault(gpu, [])
        streak.append((job, attempt, start))
        return self._maybe_quarantine(gpu, now)

    def release(self, gpu: str) -> bool:
        """Let ``gpu`` serve again (by hand); False if it was not quarantined."""
        self.streaks.pop(gpu, None)
        return self.quarantined.pop(gpu, None) is not None

    # ------------------------------------------------------------ inner
    def _maybe_quarantine(self, gpu: str, now: float) -> Optional[Verdict]:
        streak = self.streaks[gpu]
        own = [(job, att, start) for job, att, start in streak
               if self.fast_on.get(job, set()) <= {gpu}]
        jobs = {job for job, _, _ in own}
        if len(jobs) < self.after:
            return None
        began = min(start for _, _, start in own)
        if not self._others_work(gpu, began, now):
            return None
        why = (f"GPU {gpu} quarantined: {len(jobs)} jobs in a row failed within "
               f"{self.within:g}s of starting on it while other GPUs ran jobs")
        self.quarantined[gpu] = _Quarantine(why, set(jobs))
        self.streaks.pop(gpu, None)
        return Verdict(gpu, True, why, tuple((job, att) for job, att, _ in own))

    def _others_work(self, gpu: str, since: float, now: float) -> bool:
        """Has a GPU other than ``gpu`` (and not quarantined) done well since ``since``?"""
        def fine(other: str) -> bool:
            return other != gpu and other not in self.quarantined
        if any(fine(g) and t >= since for g, t in self.last_ok.items()):
            return True
        return any(now - start > self.within and any(fine(g) for g in gpus)
                   for gpus, start in self.running.values())

    def _judge_rerun(self, job: int, gpus: Sequence[str], ok: bool) -> Optional[Verdict]:
        """A job rerun because of a quarantine ended: it confirms the quarantine, or
        (failing fast again elsewhere, none confirmed yet) lifts it."""
        for gpu, q in list(self.quarantined.items()):
            if job not in q.reruns or gpu in gpus:
                continue
            q.reruns.discard(job)
            if ok:
                q.confirmed = True
            elif not q.confirmed:
                del self.quarantined[gpu]
                return Verdict(gpu, False, f"GPU {gpu} back in service: a job rerun because "
                                           f"of its quarantine failed the same way on GPU "
                                           f"{','.join(gpus)}")
        return None
