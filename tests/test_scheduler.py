"""hog.scheduler.Scheduler: which slot(s) a job runs on. Pure unit tests, no processes."""
from collections import Counter

from hog.model import Job, Slot
from hog.scheduler import Scheduler


def slots(*gpus):
    return [Slot(i, str(g)) for i, g in enumerate(gpus)]


def job(index=0, **kw):
    return Job(index=index, command=f"echo {index}", **kw)


def fill(s, jobs):
    """Place jobs until one does not fit; the dispatches made."""
    out = []
    for j in jobs:
        d = s.place(j, f"job_{j.index}")
        if d is None:
            break
        out.append(d)
    return out


def test_repeated_gpu_id_gives_that_many_concurrent_slots():
    s = Scheduler(slots(0, 0, 1))
    ds = fill(s, [job(i) for i in range(5)])
    assert len(ds) == 3
    assert Counter(d.gpu_ids for d in ds) == {("0",): 2, ("1",): 1}
    assert len({d.slot for d in ds}) == 3
    assert not s.has_free
    assert s.place(job(9), "job_9") is None


def test_a_single_gpu_job_takes_one_slot_and_sees_that_slots_gpu():
    s = Scheduler(slots(7))
    d = s.place(job(0), "job_0")
    assert d.slot == 0
    assert d.gpu_ids == ("7",)
    assert d.name == "job_0"
    assert d.job == job(0)
    assert d.attempt == 1


def test_the_least_loaded_gpu_is_used_first():
    s = Scheduler(slots(0, 0, 1, 1))
    first = s.place(job(0), "a")
    second = s.place(job(1), "b")
    assert {first.gpu_ids, second.gpu_ids} == {("0",), ("1",)}


def test_ties_go_to_the_lowest_slot_index():
    s = Scheduler(slots(3, 2, 1))
    assert s.place(job(0), "a").slot == 0
    assert s.place(job(1), "b").slot == 1
    assert s.place(job(2), "c").slot == 2


def test_release_gives_the_slot_back():
    s = Scheduler(slots(0))
    d = s.place(job(0), "a")
    assert s.place(job(1), "b") is None
    s.release(d.slot)
    assert s.has_free
    again = s.place(job(1), "b")
    assert again is not None and again.gpu_ids == ("0",)


def test_busy_counts_running_jobs_not_slots():
    s = Scheduler(slots(0, 1, 2))
    assert s.busy == 0
    d = s.place(job(0, gpus=2), "a")
    assert s.busy == 1
    s.place(job(1), "b")
    assert s.busy == 2
    s.release(d.slot)
    assert s.busy == 1


def test_a_two_gpu_job_takes_slots_on_two_distinct_gpus():
    s = Scheduler(slots(0, 0, 1))
    d = s.place(job(0, gpus=2), "a")
    assert d is not None
    assert sorted(d.gpu_ids) == ["0", "1"]
    assert len(set(d.gpu_ids)) == 2
    # one slot on GPU 0 is left
    rest = fill(s, [job(i) for i in range(1, 4)])
    assert [r.gpu_ids for r in rest] == [("0",)]


def test_releasing_a_multi_gpu_job_frees_every_slot_it_held():
    s = Scheduler(slots(0, 1))
    d = s.place(job(0, gpus=2), "a")
    assert not s.has_free
    s.release(d.slot)
    assert len(fill(s, [job(i) for i in range(1, 5)])) == 2


def test_a_multi_gpu_job_waits_while_too_few_gpus_are_free():
    s = Scheduler(slots(0, 1))
    one = s.place(job(0), "a")
    big = job(1, gpus=2)
    assert s.never_fits(big) is None
    assert s.place(big, "b") is None
    assert s.has_free            # a failed placement takes nothing
    s.release(one.slot)
    d = s.place(big, "b")
    assert d is not None and sorted(d.gpu_ids) == ["0", "1"]


def test_two_free_slots_on_one_gpu_do_not_satisfy_a_two_gpu_job():
    s = Scheduler(slots(0, 0, 1))
    ds = fill(s, [job(i) for i in range(3)])
    for d in ds:
        if d.gpu_ids == ("0",):
            s.release(d.slot)
    assert sorted(s.slots[i].gpu for i in s.free) == ["0", "0"]
    assert s.place(job(3, gpus=2), "big") is None


def test_a_zero_gpu_job_takes_a_slot_but_sees_no_gpu():
    s = Scheduler(slots(0))
    d = s.place(job(0, gpus=0), "cpu")
    assert d is not None
    assert d.gpu_ids == ()
    assert not s.has_free


def test_a_job_needing_more_gpus_than_exist_never_fits_and_says_why():
    s = Scheduler(slots(0, 0, 1))
    why = s.never_fits(job(0, gpus=3))
    assert why and "3" in why and "2" in why
    assert s.never_fits(job(0, gpus=2)) is None


def test_a_job_needing_an_unknown_resource_never_fits_and_names_it():
    s = Scheduler(slots(0))
    why = s.never_fits(job(0, resources=(("foo", 5.0),)))
    assert why and "foo" in why


def test_a_job_needing_more_of_a_resource_than_there_is_never_fits():
    s = Scheduler(slots(0), resources={"foo": 4})
    why = s.never_fits(job(0, resources=(("foo", 5.0),)))
    assert why and "foo" in why
    assert s.never_fits(job(0, resources=(("foo", 4.0),))) is None


def test_resource_amounts_held_by_running_jobs_are_not_handed_out_twice():
    s = Scheduler(slots(0, 1), resources={"lic": 4})
    a = s.place(job(0, resources=(("lic", 3.0),)), "a")
    assert a is not None
    # a second job needing 3 of the 4 units must wait, though a slot is free
    assert s.place(job(1, resources=(("lic", 3.0),)), "b") is None
    assert s.place(job(2, resources=(("lic", 1.0),)), "c") is not None
    s.release(a.slot)
    assert s.place(job(1, resources=(("lic", 3.0),)), "b") is not None


def test_no_slots_means_nothing_is_placed():
    s = Scheduler([])
    assert not s.has_free
    assert s.place(job(0), "a") is None
