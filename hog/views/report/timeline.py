"""The report's timeline, computed from a ``Sweep`` (pure: no I/O): a lane per slot of
each group of runners, a bar per attempt, and how many GPU slots were busy and offered
over time."""
import bisect
from dataclasses import dataclass
from typing import Dict, List, NamedTuple, Optional, Tuple

from hog.state.results import Attempt
from hog.state.rows import RunnerRow
from hog.state.runners import HEARTBEAT_S
from hog.views.report.gather import Sweep


@dataclass(frozen=True)
class Lane:
    """A timeline row: one slot of a group of runners (see ``runner_groups``)."""

    runner: Optional[int]       # the group's first runner
    slot: int
    gpu: str                    # the slot's GPU id; "" for a CPU slot

    @property
    def label(self) -> str:
        return f"GPU {self.gpu}" if self.slot >= 0 else "CPU"


class Bar(NamedTuple):
    """An attempt drawn on a lane (a tuple: a sweep has up to millions of them)."""

    lane: int
    attempt: Attempt
    end: float                  # the attempt's end, or now while it runs
    part: bool = False          # another GPU of a multi-GPU job (drawn on its slot too)


def runner_span(r: RunnerRow, alive: bool, now: float) -> Tuple[float, float]:
    """When a runner offered its slots. A runner that died stops at its last heartbeat
    (the ``ended`` a later recovery writes can be much later)."""
    if alive:
        return r.started, now
    last = r.heartbeat + HEARTBEAT_S
    end = min(r.ended, last) if r.ended is not None else last
    return r.started, max(r.started, end)


def runner_groups(sweep: Sweep) -> Dict[int, List[RunnerRow]]:
    """Runners that share timeline rows: on the same host with the same slots, one
    after the other (a sweep run again, or resumed). Keyed by the first one's id."""
    last_end: Dict[Optional[int], float] = {}
    for a in sweep.attempts:
        end = sweep.now if a.ended is None else a.ended
        last_end[a.runner] = max(last_end.get(a.runner, end), end)
    groups: Dict[int, List[RunnerRow]] = {}
    ends: Dict[int, float] = {}
    for r in sorted(sweep.runners, key=lambda r: (r.started, r.id)):
        start, end = runner_span(r, r.id in sweep.alive, sweep.now)
        end = max(end, last_end.get(r.id, end))
        key = next((k for k, members in groups.items() if members[0].host == r.host
                    and members[0].gpus == r.gpus and ends[k] <= start), r.id)
        groups.setdefault(key, []).append(r)
        ends[key] = max(ends.get(key, end), end)
    return groups


def lanes_and_bars(sweep: Sweep) -> Tuple[List[Lane], List[Bar]]:
    """Rows per slot of each runner group: every GPU slot it had (idle ones too), then
    the CPU slots that ran something. A multi-GPU job is drawn on its first slot and,
    as a part, on a free slot of each further GPU it held."""
    group_of: Dict[Optional[int], int] = {r.id: key for key, members in
                                         runner_groups(sweep).items() for r in members}
    found: Dict[Tuple[Optional[int], int], Lane] = {}
    for r in sweep.runners:
        for _, gpus in reversed(sweep.slot_history.get(r.id) or [(r.started, r.gpus)]):
            for i, gpu in enumerate(g for g in gpus.split(",") if g):
                found.setdefault((group_of[r.id], i), Lane(group_of[r.id], i, gpu))
    for a in sweep.attempts:
        key = (group_of.get(a.runner), a.slot)
        if key not in found:
            gpu = (a.gpus[0] if a.gpus else "?") if a.slot >= 0 else ""
            found[key] = Lane(key[0], a.slot, gpu)
    order = sorted(found.values(), key=lambda ln: (ln.runner is None, ln.runner or 0,
                                                  ln.slot < 0, abs(ln.slot)))
    index = {(ln.runner, ln.slot): i for i, ln in enumerate(order)}
    bars = []
    busy: Dict[int, List[Tuple[float, float]]] = {}
    for a in sweep.attempts:
        end = sweep.now if a.ended is None else a.ended
        lane = index[(group_of.get(a.runner), a.slot)]
        bars.append(Bar(lane, a, end))
        busy.setdefault(lane, []).append((a.started, end))
    for spans in busy.values():
        spans.sort()
    for a in sweep.attempts:
        if a.slot < 0 or len(a.gpus) < 2:
            continue
        end = sweep.now if a.ended is None else a.ended
        group = group_of.get(a.runner)
        used = {index[(group, a.slot)]}
        for gpu in a.gpus[1:]:
            for i, ln in enumerate(order):
                if ln.runner == group and ln.gpu == gpu and ln.slot >= 0 and i not in used \
                        and not _overlaps(busy.get(i, []), a.started, end):
                    used.add(i)
                    bars.append(Bar(i, a, end, part=True))
                    break
    return order, bars


def _overlaps(spans: List[Tuple[float, float]], start: float, end: float) -> bool:
    i = bisect.bisect_left(spans, (end,))
    return i > 0 and spans[i - 1][1] > start + 1e-6


@dataclass(frozen=True)
class Usage:
    """GPU- and CPU-slot use over time, as step functions from ``t0``."""

    times: List[float]          # step points, seconds since t0
    busy: List[int]             # GPU slots busy from times[i] on
    capacity: List[int]         # GPU slots offered by live runners
    cpu: List[int]              # CPU slots busy
    busy_s: float               # GPU slot-seconds busy
    offered_s: float            # GPU slot-seconds offered

    @property
    def utilisation(self) -> Optional[float]:
        return self.busy_s / self.offered_s if self.offered_s > 0 else None


def _slots(gpus: str) -> int:
    return len([g for g in gpus.split(",") if g])


def capacity_steps(sweep: Sweep) -> List[Tuple[float, int]]:
    """(time, change) of the GPU slots runners offered: each runner from its start to
    its end, its slot count following the changes it recorded (``hog gpus``); a
    runner without a record offers its current slots over its whole life."""
    last_end: Dict[Optional[int], float] = {}
    for a in sweep.attempts:
        end = sweep.now if a.ended is None else a.ended
        if end > last_end.get(a.runner, end - 1):
            last_end[a.runner] = end
    steps: List[Tuple[float, int]] = []
    for r in sweep.runners:
        history = sweep.slot_history.get(r.id) or [(r.started, r.gpus)]
        start, end = runner_span(r, r.id in sweep.alive, sweep.now)
        if any(_slots(gpus) for _, gpus in history):
            end = max(end, last_end.get(r.id, end))
        for i, (at, gpus) in enumerate(history):
            n = _slots(gpus)
            begin = start if i == 0 else min(max(start, at), end)
            until = end if i + 1 == len(history) else min(max(start, history[i + 1][0]), end)
            if n and until > begin:
                steps += [(begin, n), (until, -n)]
    return steps


def usage(sweep: Sweep, t0: float) -> Usage:
    """Busy, offered (by runners) and CPU slots over time, and the slot-seconds."""
    events: Dict[float, List[int]] = {}
    for at, n in capacity_steps(sweep):
        t = at - t0
        x = events.get(t)
        if x is None:
            x = events[t] = [0, 0, 0]
        x[2] += n
    now = sweep.now
    for a in sweep.attempts:
        if a.slot >= 0:
            which, k = 0, len(a.gpus) or 1
        else:
            which, k = 1, 1
        t = a.started - t0
        x = events.get(t)
        if x is None:
            x = events[t] = [0, 0, 0]
        x[which] += k
        t = (now if a.ended is None else a.ended) - t0
        x = events.get(t)
        if x is None:
            x = events[t] = [0, 0, 0]
        x[which] -= k
    times: List[float] = []
    busy: List[int] = []
    capacity: List[int] = []
    cpu: List[int] = []
    b = c = cap = 0
    busy_s = offered_s = 0.0
    last = 0.0
    for t in sorted(events):
        if times:
            dt = t - last
            busy_s += (b if b < cap else cap) * dt
            offered_s += cap * dt
        db, dc, dcap = events[t]
        b, c, cap = b + db, c + dc, cap + dcap
        last = t
        times.append(t)
        busy.append(b)
        cpu.append(c)
        capacity.append(cap)
    return Usage(times, busy, capacity, cpu, busy_s, offered_s)
