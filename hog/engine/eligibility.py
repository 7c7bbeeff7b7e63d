"""Which runner of a queue might run a job that this runner cannot (pure).

A job that can never run on this runner (pinned to a GPU it lacks, more GPUs or
resources than it has) is not ended ``unschedulable`` while another runner might
still run it. The rule, fed with the active runners' rows:

- another active runner could run it (its GPUs, CPU slots and resources, as it
  recorded them): it waits for that runner;
- an active runner (this one included) is ``--keep-alive``: it waits, for a runner
  with what it needs to join;
- other active runners remain, none of which could run it: it waits, and the last
  of them ends it (so of several runners only one does);
- else (this is the last active runner, or the last one that might run it is
  finishing): it ends ``unschedulable``.

A runner whose capacity is unknown (an older hog, or Ray, whose cluster decides) is
taken as one that could run it. GPU memory (``memory=``) is left to the runner that
tries: another runner's GPU memory is not known here.
"""
import json
from dataclasses import dataclass, replace
from typing import Iterable, Optional, Sequence, Tuple

from hog.backends.scheduler import Capacity, Scheduler, named_resources
from hog.config import RunConfig
from hog.model import Job, Slot
from hog.placement import MEMORY
from hog.state.rows import RunnerRow


@dataclass(frozen=True)
class Peer:
    """A runner as the rule sees it."""
    id: int
    pid: int
    gpus: Tuple[str, ...]           # one entry per GPU slot
    keep_alive: bool
    cpu_slots: Optional[int]        # None: capacity unknown (may run anything)
    resources: Tuple[Tuple[str, float], ...] = ()


def capacity_of(cfg: RunConfig) -> str:
    """What a runner records of its capacity (the runners table's ``capacity``): its CPU
    slots and resources; '' (unknown) with Ray, whose cluster decides."""
    if cfg.backend == "ray":
        return ""
    cpu = cfg.cpu_slots if cfg.cpu_slots is not None else len(cfg.slots)
    return json.dumps({"cpu_slots": cpu, "resources": dict(cfg.resources)}, sort_keys=True)


def peer(row: RunnerRow) -> Peer:
    """The rule's view of a runner's row."""
    cpu: Optional[int] = None
    resources: Tuple[Tuple[str, float], ...] = ()
    try:
        cap = json.loads(row.capacity) if row.capacity else None
        if isinstance(cap, dict):
            cpu = int(cap.get("cpu_slots", 0))
            resources = tuple(sorted((str(k), float(v))
                                     for k, v in dict(cap.get("resources") or {}).items()))
    except (ValueError, TypeError):
        cpu = None
    ray = row.gpus.startswith("ray ")       # (a Ray runner's label: its cluster decides)
    gpus = () if ray else tuple(g for g in row.gpus.split(",") if g)
    return Peer(row.id, row.pid, gpus, bool(row.keep_alive), cpu, resources)


def could_run(p: Peer, job: Job) -> bool:
    """Could runner ``p`` ever run ``job`` (its GPU memory aside)?"""
    if p.cpu_slots is None:
        return True
    sched = Scheduler(Capacity([Slot(i, g) for i, g in enumerate(p.gpus)],
                               resources=dict(p.resources), cpu_slots=p.cpu_slots))
    bare = replace(job, resources=tuple((k, v) for k, v in job.resources if k != MEMORY))
    return sched.never_fits(bare) is None


def wanted(job: Job) -> str:
    """What a runner needs to run ``job``, in words ("a runner with GPU 3")."""
    needs = []
    if job.gpu_ids:
        ids = ",".join(job.gpu_ids)
        needs.append(f"GPU {ids}" if len(job.gpu_ids) == 1 else f"GPUs {ids}")
    elif job.gpus == 0:
        needs.append("CPU slots")
    elif job.gpus > 1:
        needs.append(f"{job.gpus:g} GPUs")
    needs += [f"{name}={amount:g}" for name, amount in named_resources(job)]
    return "a runner with " + ", ".join(needs) if needs else "a runner that can run it"


def describe(p: Peer) -> str:
    gpus = ",".join(dict.fromkeys(p.gpus)) or "none"
    return f"runner {p.id} (pid {p.pid}, GPUs {gpus})"


def decide(job: Job, me: Peer, others: Sequence[Peer], finishing: bool = False) -> Optional[str]:
    """What ``job`` (which runner ``me`` cannot run) waits for, or None when it is to end
    unschedulable now. ``others``: the other active runners; ``finishing``: ``me`` is
    about to end (its own --keep-alive and the incapable others no longer hold it)."""
    capable = [p for p in others if could_run(p, job)]
    if capable:
        return "waits for " + describe(capable[0])
    keeping = [p for p in others if p.keep_alive]
    if keeping:
        return f"waits for {wanted(job)} (runner {keeping[0].id} is --keep-alive)"
    if me.keep_alive and not finishing:
        return f"waits for {wanted(job)} (--keep-alive)"
    if others and not finishing:
        return f"waits for {wanted(job)} while other runners are active"
    return None


def runner_set(rows: Iterable[RunnerRow]) -> Tuple[Tuple[int, str, int, str], ...]:
    """What of the active runners the rule depends on: when it changes, jobs left to
    other runners are decided again."""
    return tuple(sorted((r.id, r.gpus, r.keep_alive, r.capacity) for r in rows))


def split(rows: Sequence[RunnerRow], me: int) -> Tuple[Optional[Peer], Sequence[Peer]]:
    """This runner's row (None if it is not among them) and the others'."""
    mine = [peer(r) for r in rows if r.id == me]
    return (mine[0] if mine else None), [peer(r) for r in rows if r.id != me]
