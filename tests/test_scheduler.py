"""hog.scheduler.Scheduler: which queued jobs start now, and where.

Pure unit tests: no processes, no sleeps. Time is a fake clock the tests move by
hand, or that ``simulate`` moves from one job end to the next.
"""
import itertools
from collections import Counter
from typing import Dict, List, Sequence, Tuple

import pytest

from hog.backends.scheduler import Capacity, Placement, Scheduler
from hog.model import Job, Slot

G = 2 ** 30


# ------------------------------------------------------------------ helpers
class Clock:
    def __init__(self, t: float = 0.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def sched(*gpus, resources=None, gpu_memory=None, cpu_slots=1, clock=None) -> Scheduler:
    """A scheduler over slots on ``gpus`` (a repeated id is another slot on that GPU)."""
    cap = Capacity(slots=[Slot(i, str(g)) for i, g in enumerate(gpus)],
                   resources=dict(resources or {}),
                   gpu_memory={str(k): v for k, v in (gpu_memory or {}).items()},
                   cpu_slots=cpu_slots)
    return Scheduler(cap, clock=clock or Clock())


def job(index=0, **kw) -> Job:
    if "resources" in kw and isinstance(kw["resources"], dict):
        kw["resources"] = tuple(sorted(kw["resources"].items()))
    if "gpu_ids" in kw:
        kw["gpu_ids"] = tuple(str(g) for g in kw["gpu_ids"])
    return Job(index=index, command=f"echo {index}", **kw)


def ids(placements: Sequence[Placement]) -> List[int]:
    return [p.job_id for p in placements]


def by_id(placements: Sequence[Placement]) -> Dict[int, Placement]:
    return {p.job_id: p for p in placements}


def free_gpu_slots(s: Scheduler) -> List[str]:
    """GPU ids of the free GPU slots (one entry per slot)."""
    return sorted(s.slots[i].gpu for i in s.free)


class Run:
    """What ``simulate`` saw of one job."""

    def __init__(self, placement: Placement, start: float, end: float):
        self.placement = placement
        self.start = start
        self.end = end

    @property
    def gpus(self) -> Tuple[str, ...]:
        return self.placement.gpu_ids


def simulate(s: Scheduler, clock: Clock, jobs: Sequence[Job], durations: Dict[int, float],
             offer=None, limit: int = 10_000) -> Dict[int, Run]:
    """Run ``jobs`` (queue order) to the end: schedule, jump the clock to the next job
    end, release what ended, repeat. ``offer(s, queue)`` -> placements replaces the
    plain ``s.schedule(queue)`` (to model other policies). Returns {job id: Run}."""
    queue = list(jobs)
    runs: Dict[int, Run] = {}
    running: Dict[int, float] = {}           # job id -> end time
    for _ in range(limit):
        started = offer(s, queue) if offer else s.schedule(queue)
        for p in started:
            end = clock.t + durations[p.job_id]
            runs[p.job_id] = Run(p, clock.t, end)
            running[p.job_id] = end
        started_ids = set(ids(started))
        queue = [j for j in queue if j.index not in started_ids]
        if not running:
            assert not queue, f"jobs {[j.index for j in queue]} can never start"
            return runs
        clock.t = min(running.values())
        for jid in sorted(j for j, end in running.items() if end == clock.t):
            del running[jid]
            s.release(jid)
    raise AssertionError("simulation did not end")


def makespan(runs: Dict[int, Run]) -> float:
    return max(r.end for r in runs.values()) - min(r.start for r in runs.values())


def assert_no_gpu_overbooking(runs: Dict[int, Run], slots_per_gpu: Dict[str, int]) -> None:
    for gpu, n in slots_per_gpu.items():
        events = []
        for r in runs.values():
            if gpu in r.gpus:
                events += [(r.start, 1), (r.end, -1)]
        now = 0
        for _, d in sorted(events, key=lambda e: (e[0], e[1])):
            now += d
            assert now <= n, f"GPU {gpu} ran more than {n} job(s) at once"


# ------------------------------------------------------------ GPU slots
def test_a_repeated_gpu_id_gives_that_many_concurrent_slots():
    s = sched(0, 0, 1)
    started = s.schedule([job(i) for i in range(5)])
    assert ids(started) == [0, 1, 2]
    assert Counter(p.gpu_ids for p in started) == {("0",): 2, ("1",): 1}
    assert len({p.slot for p in started}) == 3
    assert not s.free
    assert s.schedule([job(3), job(4)]) == []


def test_a_single_gpu_job_takes_one_slot_and_gets_that_slots_gpu():
    s = sched(7)
    [p] = s.schedule([job(0)])
    assert p == Placement(job_id=0, slots=(0,), gpu_ids=("7",), cpu=False)
    assert p.slot == 0


def test_the_least_loaded_gpu_is_used_first():
    s = sched(0, 0, 1, 1)
    first, second = s.schedule([job(0), job(1)])
    assert {first.gpu_ids, second.gpu_ids} == {("0",), ("1",)}


def test_the_least_loaded_gpu_is_used_first_after_jobs_end():
    s = sched(0, 0, 1, 1)
    placed = by_id(s.schedule([job(i) for i in range(4)]))
    # end one job on GPU 0 and both on GPU 1: GPU 1 is now the less loaded one
    on_0 = [i for i, p in placed.items() if p.gpu_ids == ("0",)]
    on_1 = [i for i, p in placed.items() if p.gpu_ids == ("1",)]
    for i in on_0[:1] + on_1:
        s.release(i)
    [p] = s.schedule([job(10)])
    assert p.gpu_ids == ("1",)


def test_ties_between_equally_loaded_gpus_go_to_the_lower_gpu_id():
    s = sched(3, 2, 1)
    started = s.schedule([job(0), job(1), job(2)])
    assert [p.gpu_ids for p in started] == [("1",), ("2",), ("3",)]


def test_a_k_gpu_job_takes_k_slots_on_k_distinct_gpus():
    s = sched(0, 0, 1, 1, 2)
    [p] = s.schedule([job(0, gpus=3)])
    assert len(p.slots) == 3 and len(set(p.slots)) == 3
    assert sorted(p.gpu_ids) == ["0", "1", "2"]
    assert [s.slots[i].gpu for i in p.slots] == list(p.gpu_ids)
    assert p.slot == p.slots[0]
    assert free_gpu_slots(s) == ["0", "1"]


def test_releasing_a_multi_gpu_job_frees_every_slot_it_held():
    s = sched(0, 1, 2)
    [p] = s.schedule([job(0, gpus=3)])
    assert not s.free
    s.release(0)
    assert free_gpu_slots(s) == ["0", "1", "2"]
    assert ids(s.schedule([job(i) for i in range(1, 5)])) == [1, 2, 3]


def test_two_free_slots_on_one_gpu_do_not_make_a_two_gpu_job_fit():
    s = sched(0, 0, 1)
    s.schedule([job(0)])                        # takes a slot on GPU 0 (lowest id)
    s.schedule([job(1)])                        # GPU 1 (least loaded)
    s.release(0)
    assert free_gpu_slots(s) == ["0", "0"]
    assert s.never_fits(job(2, gpus=2)) is None
    assert s.schedule([job(2, gpus=2)]) == []
    assert free_gpu_slots(s) == ["0", "0"]      # a failed fit takes nothing


def test_a_job_offered_again_while_it_runs_is_not_started_twice():
    s = sched(0, 1)
    assert ids(s.schedule([job(0)])) == [0]
    assert ids(s.schedule([job(0), job(1)])) == [1]


def test_releasing_an_unknown_job_changes_nothing():
    s = sched(0)
    assert s.release(42) == []
    assert ids(s.schedule([job(0)])) == [0]


# ------------------------------------------------------------- CPU slots
def test_a_gpus_0_job_runs_in_a_cpu_slot_and_takes_no_gpu_slot():
    s = sched(0, 1, cpu_slots=2)
    [p] = s.schedule([job(0, gpus=0)])
    assert p.cpu
    assert p.gpu_ids == ()
    assert p.slot < 0                       # CPU slots are -1, -2, ...
    assert free_gpu_slots(s) == ["0", "1"]
    assert ids(s.schedule([job(1), job(2)])) == [1, 2]


def test_cpu_jobs_are_limited_by_cpu_slots_and_each_gets_its_own():
    s = sched(0, cpu_slots=2)
    started = s.schedule([job(i, gpus=0) for i in range(4)])
    assert ids(started) == [0, 1]
    assert sorted(p.slot for p in started) == [-2, -1]
    s.release(0)
    [p] = s.schedule([job(2, gpus=0), job(3, gpus=0)])
    assert p.job_id == 2 and p.slot == started[0].slot


def test_a_cpu_job_runs_while_every_gpu_slot_is_busy():
    s = sched(0, 1, cpu_slots=1)
    assert ids(s.schedule([job(0), job(1)])) == [0, 1]
    assert not s.free
    assert s.has_room()
    [p] = s.schedule([job(2), job(3, gpus=0)])
    assert p.job_id == 3 and p.cpu


def test_a_cpu_job_is_never_stuck_behind_a_blocked_gpu_job():
    clock = Clock()
    s = sched(0, 1, cpu_slots=1, clock=clock)
    s.schedule([job(0)])
    clock.t = 10
    s.release(0)                            # a duration is known: reservations bite
    s.schedule([job(1)])                    # GPU 0 busy again
    clock.t = 11
    # the 2-GPU head is blocked and reserves GPU 1; the CPU job still starts
    started = s.schedule([job(2, gpus=2), job(3, gpus=0), job(4)])
    assert 3 in ids(started)
    assert 4 not in ids(started)            # a 10 s GPU job would delay the head


def test_a_cpu_job_that_finds_no_cpu_slot_does_not_hold_up_gpu_jobs():
    s = sched(0, 1, cpu_slots=1)
    s.schedule([job(0, gpus=0)])
    assert ids(s.schedule([job(1, gpus=0), job(2), job(3)])) == [2, 3]


# ------------------------------------------------------ named resources
def test_named_resources_held_by_running_jobs_are_not_handed_out_twice():
    s = sched(0, 1, 2, resources={"lic": 4})
    assert ids(s.schedule([job(0, resources={"lic": 3})])) == [0]
    # 3 of 4 are held: another job asking for 3 waits although GPU slots are free,
    # and one asking for 1 (what is left) starts
    started = s.schedule([job(1, resources={"lic": 3}), job(2, resources={"lic": 1})])
    assert ids(started) == [2]
    assert s.schedule([job(1, resources={"lic": 3}), job(3, resources={"lic": 1})]) == []
    assert len(s.free) == 1                 # a GPU slot is free; the licences are not


def test_named_resources_are_given_back_on_release():
    s = sched(0, 1, resources={"lic": 1})
    assert ids(s.schedule([job(0, resources={"lic": 1}), job(1, resources={"lic": 1})])) == [0]
    assert s.schedule([job(1, resources={"lic": 1})]) == []
    s.release(0)
    assert ids(s.schedule([job(1, resources={"lic": 1})])) == [1]


def test_jobs_without_a_resource_run_beside_the_jobs_that_hold_it():
    s = sched(0, 1, 2, resources={"lic": 1})
    started = s.schedule([job(0, resources={"lic": 1}), job(1, resources={"lic": 1}),
                          job(2), job(3)])
    assert ids(started) == [0, 2, 3]


def test_several_resources_must_all_be_free():
    s = sched(0, 1, 2, resources={"a": 2, "b": 1})
    assert ids(s.schedule([job(0, resources={"b": 1})])) == [0]
    assert s.schedule([job(1, resources={"a": 1, "b": 1})]) == []
    assert ids(s.schedule([job(2, resources={"a": 2})])) == [2]


def test_cpu_jobs_use_the_resource_ledger_too():
    s = sched(0, resources={"lic": 1}, cpu_slots=2)
    assert ids(s.schedule([job(0, gpus=0, resources={"lic": 1}),
                           job(1, gpus=0, resources={"lic": 1})])) == [0]
    s.release(0)
    assert ids(s.schedule([job(1, gpus=0, resources={"lic": 1})])) == [1]


def test_fractional_resource_amounts_add_up():
    s = sched(0, 0, 0, resources={"bw": 1})
    started = s.schedule([job(i, resources={"bw": 0.5}) for i in range(3)])
    assert ids(started) == [0, 1]


# ------------------------------------------------------------ GPU memory
def test_memory_jobs_share_a_gpu_while_their_declared_sum_fits_its_total():
    s = sched(0, 0, 0, gpu_memory={0: 40 * G})
    started = s.schedule([job(i, resources={"memory": 20 * G}) for i in range(3)])
    assert ids(started) == [0, 1]
    assert len(s.free) == 1                 # a slot is free, but the memory is not
    s.release(1)
    assert ids(s.schedule([job(2, resources={"memory": 20 * G})])) == [2]


def test_memory_packs_jobs_of_different_sizes():
    s = sched(0, 0, 0, gpu_memory={0: 40 * G})
    started = s.schedule([job(0, resources={"memory": 30 * G}),
                          job(1, resources={"memory": 20 * G}),
                          job(2, resources={"memory": 10 * G})])
    assert ids(started) == [0, 2]


def test_memory_is_per_gpu_and_each_gpu_has_its_own_total():
    s = sched(0, 0, 1, 1, gpu_memory={0: 40 * G, 1: 80 * G})
    started = s.schedule([job(i, resources={"memory": 40 * G}) for i in range(4)])
    assert Counter(p.gpu_ids for p in started) == {("0",): 1, ("1",): 2}


def test_a_multi_gpu_job_declares_memory_on_each_of_its_gpus():
    s = sched(0, 0, 1, 1, gpu_memory={0: 40 * G, 1: 40 * G})
    [p] = s.schedule([job(0, gpus=2, resources={"memory": 30 * G})])
    assert sorted(p.gpu_ids) == ["0", "1"]
    # 10G is left on each GPU
    assert s.schedule([job(1, resources={"memory": 20 * G})]) == []
    assert len(s.schedule([job(2, resources={"memory": 10 * G}),
                           job(3, resources={"memory": 10 * G})])) == 2
    s.release(0)
    assert ids(s.schedule([job(1, resources={"memory": 20 * G})])) == [1]


def test_jobs_without_memory_are_not_limited_by_gpu_memory():
    s = sched(0, 0, gpu_memory={0: 40 * G})
    started = s.schedule([job(0, resources={"memory": 40 * G}), job(1)])
    assert ids(started) == [0, 1]


# -------------------------------------------------------------- affinity
def test_affinity_runs_a_job_only_on_the_gpus_it_names():
    s = sched(0, 1, 2)
    [p] = s.schedule([job(0, gpu_ids=[2])])
    assert p.gpu_ids == ("2",)


def test_a_job_pinned_to_a_busy_gpu_waits_while_other_gpus_are_free():
    s = sched(0, 1, 2)
    s.schedule([job(0, gpu_ids=[1])])
    assert s.schedule([job(1, gpu_ids=[1])]) == []
    assert free_gpu_slots(s) == ["0", "2"]
    s.release(0)
    [p] = s.schedule([job(1, gpu_ids=[1])])
    assert p.gpu_ids == ("1",)


def test_a_multi_gpu_job_with_affinity_takes_gpus_from_its_set():
    s = sched(0, 1, 2, 3)
    [p] = s.schedule([job(0, gpus=2, gpu_ids=[1, 3])])
    assert sorted(p.gpu_ids) == ["1", "3"]


def test_affinity_to_more_gpus_than_needed_lets_the_scheduler_choose_among_them():
    s = sched(0, 1, 2)
    s.schedule([job(0, gpu_ids=[1])])
    [p] = s.schedule([job(1, gpu_ids=[1, 2])])
    assert p.gpu_ids == ("2",)


# ------------------------------------------------------------- never_fits
@pytest.mark.parametrize("capacity, the_job, reason", [
    (dict(), job(0, resources={"foo": 5}), "needs foo=5; this runner has no foo"),
    (dict(resources={"foo": 4}), job(0, resources={"foo": 5}),
     "needs foo=5; this runner has 4"),
    (dict(), job(0, gpus=3), "needs 3 GPUs; this runner has 2"),
    (dict(), job(0, gpu_ids=[7]), "must run on GPU 7; this runner has no GPU 7"),
    (dict(), job(0, gpus=2, gpu_ids=[1]), "needs 2 GPUs but is pinned to 1"),
    (dict(gpu_memory={0: 40 * G, 1: 80 * G}), job(0, resources={"memory": 100 * G}),
     "needs memory=100G per GPU; the largest GPU here has 80G"),
    (dict(), job(0, resources={"memory": 10 * G}), "knows no GPU memory"),
    (dict(cpu_slots=0), job(0, gpus=0), "this runner has no CPU slots"),
], ids=["unknown-resource", "more-than-total", "more-gpus-than-exist", "missing-gpu",
        "pinned-to-too-few", "memory-larger-than-any-gpu", "memory-unknown",
        "cpu-job-without-cpu-slots"])
def test_never_fits_says_why_in_words(capacity, the_job, reason):
    s = sched(0, 0, 1, **capacity)
    why = s.never_fits(the_job)
    assert why is not None and reason in why, why


@pytest.mark.parametrize("capacity, the_job", [
    (dict(resources={"foo": 5}), job(0, resources={"foo": 5})),
    (dict(), job(0, gpus=2)),
    (dict(), job(0, gpu_ids=[1])),
    (dict(gpu_memory={0: 40 * G, 1: 80 * G}), job(0, resources={"memory": 80 * G})),
    (dict(cpu_slots=1), job(0, gpus=0)),
    (dict(cpu_slots=0), job(0)),
])
def test_never_fits_is_none_for_jobs_that_can_run_some_day(capacity, the_job):
    s = sched(0, 0, 1, **capacity)
    assert s.never_fits(the_job) is None


def test_a_job_pinned_to_a_gpu_too_small_for_its_memory_never_fits():
    s = sched(0, 1, gpu_memory={0: 40 * G, 1: 80 * G})
    why = s.never_fits(job(0, gpu_ids=[0], resources={"memory": 60 * G}))
    assert why and "memory=60G" in why


def test_never_fits_does_not_depend_on_what_is_running():
    s = sched(0, resources={"foo": 1})
    s.schedule([job(0, resources={"foo": 1})])
    assert s.never_fits(job(1, resources={"foo": 1})) is None
    assert s.never_fits(job(2)) is None


def test_schedule_passes_over_jobs_that_never_fit():
    s = sched(0, 1)
    started = s.schedule([job(0, gpus=5), job(1, resources={"foo": 1}), job(2), job(3)])
    assert ids(started) == [2, 3]


# ------------------------------------------------------------ queue order
def test_jobs_start_in_queue_order_when_everything_fits():
    s = sched(0, 1, 2, 3)
    queue = [job(i) for i in (5, 2, 9, 1)]
    assert ids(s.schedule(queue)) == [5, 2, 9, 1]


def test_queue_order_is_the_callers_and_priority_is_not_reapplied():
    """The caller (the store) offers jobs by priority then submission; the scheduler
    keeps that order: the first job offered takes the only slot."""
    s = sched(0)
    assert ids(s.schedule([job(0, priority=0), job(1, priority=5)])) == [0]
    s.release(0)
    assert ids(s.schedule([job(1, priority=5), job(2, priority=0)])) == [1]


def test_a_job_that_does_not_fit_lets_later_jobs_that_fit_start():
    """Backfill: nothing is known about durations yet, so no GPU is left idle."""
    s = sched(0, 1)
    s.schedule([job(0)])
    started = s.schedule([job(1, gpus=2), job(2), job(3)])
    assert ids(started) == [2]


def test_backfill_on_gpus_outside_the_heads_reservation_is_always_allowed():
    clock = Clock()
    s = sched(0, 1, 2, clock=clock)
    s.schedule([job(0)])
    clock.t = 100
    s.release(0)                                   # jobs last ~100 s
    s.schedule([job(1, gpu_ids=[0]), job(2, gpu_ids=[1])])
    clock.t = 110
    # the head needs GPUs 0 and 1 (busy ~90 s more); a 100 s job on GPU 2 cannot delay it
    started = s.schedule([job(3, gpus=2, gpu_ids=[0, 1]), job(4)])
    assert ids(started) == [4]
    assert started[0].gpu_ids == ("2",)


def test_backfill_onto_a_reserved_gpu_waits_when_it_would_delay_the_head():
    clock = Clock()
    s = sched(0, 1, clock=clock)
    s.schedule([job(0), job(1)])
    clock.t = 10
    s.release(0)
    s.release(1)                                   # mean duration: 10 s
    s.schedule([job(2)])                           # on GPU 0, ends at ~20
    clock.t = 15
    # head: 2 GPUs, can start at ~20. A 10 s job on GPU 1 would end at 25: held back
    assert s.schedule([job(3, gpus=2), job(4)]) == []
    # a job whose timeout ends it by 18 cannot delay the head: it may use GPU 1
    started = s.schedule([job(3, gpus=2), job(5, timeout=3)])
    assert ids(started) == [5]


# ------------------------------------------------------ scenarios (simulated)
def test_guilds_mix_on_two_gpus_ends_at_6_not_8():
    """aaa (1 GPU, 4 units), ccc (2 GPUs, 2), bbb and ddd (1 GPU, 2 each), in that
    order. Blocking behind ccc (Dask) ends at 8; backfilling bbb then ddd beside aaa
    ends at 6, the optimum."""
    clock = Clock()
    s = sched(0, 1, clock=clock)
    aaa, ccc, bbb, ddd = job(0), job(1, gpus=2), job(2), job(3)
    runs = simulate(s, clock, [aaa, ccc, bbb, ddd], {0: 4, 1: 2, 2: 2, 3: 2})
    assert makespan(runs) == 6
    assert runs[1].start == 4 and sorted(runs[1].gpus) == ["0", "1"]
    assert runs[2].start == 0 and runs[3].start == 2
    assert_no_gpu_overbooking(runs, {"0": 1, "1": 1})


def test_guilds_mix_would_end_at_8_if_the_head_blocked_everything():
    """The contrast: offering only the head while it waits (strict queue order)."""
    clock = Clock()
    s = sched(0, 1, clock=clock)

    def strict(s, queue):
        out = []
        for j in queue:
            placed = s.schedule([j])
            if not placed:
                break
            out += placed
        return out

    runs = simulate(s, clock, [job(0), job(1, gpus=2), job(2), job(3)],
                    {0: 4, 1: 2, 2: 2, 3: 2}, offer=strict)
    assert makespan(runs) == 8


@pytest.mark.parametrize("order", list(itertools.permutations(["aaa", "bbb", "ccc", "ddd"])),
                         ids="-".join)
def test_guilds_affinity_set_ends_in_3_rounds_in_every_order(order):
    """aaa and bbb on GPU 0, ccc on GPUs 0+1, ddd on GPU 1, one unit each."""
    spec = {"aaa": dict(gpu_ids=[0]), "bbb": dict(gpu_ids=[0]),
            "ccc": dict(gpus=2, gpu_ids=[0, 1]), "ddd": dict(gpu_ids=[1])}
    jobs = [job(i, name=name, **spec[name]) for i, name in enumerate(order)]
    clock = Clock()
    s = sched(0, 1, clock=clock)
    runs = simulate(s, clock, jobs, {j.index: 1 for j in jobs})
    assert makespan(runs) == 3
    for j in jobs:
        assert set(runs[j.index].gpus) <= set(j.gpu_ids)
    assert_no_gpu_overbooking(runs, {"0": 1, "1": 1})


def _stream(n=24, big_at=6):
    """1-GPU jobs of 10, 12 or 14 time units with a 2-GPU job of 10 at position 6."""
    jobs, durations = [], {}
    for i in range(n + 1):
        if i == big_at:
            jobs.append(job(i, name="big", gpus=2))
            durations[i] = 10
        else:
            jobs.append(job(i))
            durations[i] = 10 + 2 * (i % 3)
    return jobs, durations, big_at


def test_a_two_gpu_job_in_a_stream_of_one_gpu_jobs_starts_within_one_job_duration():
    jobs, durations, big = _stream()
    clock = Clock()
    runs = simulate(sched(0, 1, clock=clock), clock, jobs, durations)
    at_head = runs[big - 1].start          # every job before it has started
    waited = runs[big].start - at_head
    assert waited <= max(durations.values()), f"waited {waited} at the head"
    assert sorted(runs[big].gpus) == ["0", "1"]
    assert_no_gpu_overbooking(runs, {"0": 1, "1": 1})


def test_without_the_reservation_the_two_gpu_job_starves_behind_the_stream():
    """Plain greedy backfill (each job offered on its own, so no head is known):
    whenever a GPU frees, the next 1-GPU job takes it, both GPUs stay busy and the
    2-GPU job waits until the stream runs dry. The reservation is what prevents it."""
    jobs, durations, big = _stream()

    def greedy(s, queue):
        out = []
        for j in queue:
            out += s.schedule([j])
        return out

    clock = Clock()
    runs = simulate(sched(0, 1, clock=clock), clock, jobs, durations, offer=greedy)
    stream_starts = [r.start for i, r in runs.items() if i != big]
    assert runs[big].start >= max(stream_starts), "the 2-GPU job got in before the stream ended"
    waited = runs[big].start - runs[big - 1].start
    assert waited > 5 * max(durations.values())


# --------------------------------------------------------- unavailable GPUs
def test_unavailable_gpus_get_no_new_jobs():
    s = sched(0, 0, 1, 1)
    s.set_unavailable({"0"})
    started = s.schedule([job(i) for i in range(4)])
    assert [p.gpu_ids for p in started] == [("1",), ("1",)]


def test_when_every_gpu_is_unavailable_nothing_starts_until_one_is_given_back():
    s = sched(0, 1, cpu_slots=1)
    s.set_unavailable({"0", "1"})
    assert s.schedule([job(0), job(1, gpus=2)]) == []
    # CPU jobs need no GPU
    assert ids(s.schedule([job(2, gpus=0)])) == [2]
    s.set_unavailable({"1"})
    [p] = s.schedule([job(0), job(1, gpus=2)])
    assert p.job_id == 0 and p.gpu_ids == ("0",)


def test_a_gpu_that_becomes_unavailable_keeps_its_running_job():
    s = sched(0, 1)
    [p] = s.schedule([job(0, gpu_ids=[0])])
    s.set_unavailable({"0"})
    assert 0 in s.running
    s.release(0)
    assert s.schedule([job(1, gpu_ids=[0])]) == []
    s.set_unavailable(set())
    assert ids(s.schedule([job(1, gpu_ids=[0])])) == [1]


def test_unavailable_gpus_do_not_make_a_job_never_fit():
    s = sched(0, 1)
    s.set_unavailable({"0", "1"})
    assert s.never_fits(job(0, gpus=2)) is None


# -------------------------------------------------- duration estimates
def _backfill_allowed_after(ran: bool) -> bool:
    """A 100 s job ends (ran or not); then is a 1-GPU job backfilled onto the GPU a
    2-GPU head has reserved?"""
    clock = Clock()
    s = sched(0, 1, clock=clock)
    s.schedule([job(0)])
    clock.t = 100
    s.release(0, ran=ran)
    s.schedule([job(1)])
    clock.t = 101
    return bool(s.schedule([job(2, gpus=2), job(3)]))


def test_a_job_that_ran_informs_the_duration_estimate():
    assert _backfill_allowed_after(ran=True) is False


def test_release_ran_false_does_not_change_the_duration_estimate():
    # nothing is known, as if the job had never started: backfill keeps GPUs busy
    assert _backfill_allowed_after(ran=False) is True


def test_release_ran_false_still_frees_what_the_job_held():
    s = sched(0, resources={"lic": 1})
    s.schedule([job(0, resources={"lic": 1})])
    s.release(0, ran=False)
    assert ids(s.schedule([job(1, resources={"lic": 1})])) == [1]


# ----------------------------------------------------- adding and retiring
def test_an_added_slot_takes_jobs():
    s = sched(0)
    s.schedule([job(0)])
    index = s.add_slot("5")
    assert index == 1 and s.slots[index].gpu == "5"
    [p] = s.schedule([job(1)])
    assert p.slots == (index,) and p.gpu_ids == ("5",)
    assert "5" in s.gpus()
    assert s.never_fits(job(2, gpus=2)) is None


def test_an_added_slot_on_a_known_gpu_is_another_concurrent_slot():
    s = sched(0)
    s.add_slot("0")
    assert ids(s.schedule([job(0), job(1), job(2)])) == [0, 1]


def test_a_free_slot_retires_at_once():
    s = sched(0, 1)
    assert s.retire_slot(1) is True
    assert 1 not in s.slots
    assert s.slot_gpus() == ["0"]
    started = s.schedule([job(0), job(1)])
    assert [p.gpu_ids for p in started] == [("0",)]
    assert "needs 2 GPUs" in s.never_fits(job(2, gpus=2))


def test_a_busy_slot_retires_when_its_job_is_released():
    s = sched(0, 1)
    s.schedule([job(0, gpu_ids=[1])])
    assert s.retire_slot(1) is False
    assert s.slot_gpus() == ["0"]
    assert ids(s.schedule([job(1), job(2)])) == [1]
    assert s.release(0) == [1]
    assert 1 not in s.slots
    s.release(1)
    started = s.schedule([job(2), job(3)])
    assert [p.gpu_ids for p in started] == [("0",)]


def test_a_multi_gpu_job_releases_only_its_retiring_slots():
    s = sched(0, 1, 2)
    s.schedule([job(0, gpus=3)])
    s.retire_slot(2)
    assert s.release(0) == [2]
    assert free_gpu_slots(s) == ["0", "1"]
