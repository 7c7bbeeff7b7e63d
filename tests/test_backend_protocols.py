"""The boundaries between the runner and its backends (``hog.backends.base``): which
implementation has which capability, and how an admission asks the runner's checks."""
from hog.backends.base import Admission, Backend, LocalCapacity, Resizable
from hog.backends.local import LocalBackend
from hog.backends.ray.admission import RayAdmission
from hog.backends.ray.backend import RayBackend
from hog.backends.scheduler import Capacity, Scheduler
from hog.model import Job, Slot


def job(i, gpus=1):
    return Job(index=i, command="true", gpus=gpus)


def scheduler(*gpus, cpu_slots=1):
    return Scheduler(Capacity([Slot(i, g) for i, g in enumerate(gpus)], cpu_slots=cpu_slots),
                     clock=lambda: 0.0)


def test_only_the_local_backend_and_scheduler_have_the_local_capabilities():
    assert issubclass(LocalBackend, Backend) and issubclass(LocalBackend, Resizable)
    assert issubclass(RayBackend, Backend) and not issubclass(RayBackend, Resizable)
    local, ray = scheduler("0"), RayAdmission()
    assert isinstance(local, Admission) and isinstance(local, LocalCapacity)
    assert isinstance(ray, Admission) and not isinstance(ray, LocalCapacity)


def test_once_every_gpu_slot_is_busy_only_cpu_jobs_are_checked_and_started():
    for admission in (scheduler("0"), RayAdmission(max_pending=1)):
        if isinstance(admission, RayAdmission):
            admission.set_nodes([{"GPU": 1.0, "CPU": 4.0}])
        asked = []
        placed = admission.schedule([job(0), job(1), job(2, gpus=0), job(3)],
                                    lambda j: asked.append(j.index) or True)
        assert [p.job_id for p in placed] == [0, 2]
        assert asked == [0, 2]


def test_a_job_the_runner_turns_down_is_not_placed_and_the_next_one_is():
    s = scheduler("0", "1")
    placed = s.schedule([job(0), job(1), job(2)], lambda j: j.index != 0)
    assert [p.job_id for p in placed] == [1, 2] and s.room() == 0


def test_resizing_keeps_slots_on_wanted_gpus_and_retires_busy_ones_when_they_end():
    s = scheduler("0", "1", "2")
    busy = s.schedule([job(0)])[0]              # takes slot 0, on GPU 0
    gone, added = s.resize(["1", "3"])
    assert (busy.slot, gone) == (0, [2])      # slot 0 retires once its job ends
    assert [s.slots[i].gpu for i in added] == ["3"] and s.owns_slot(0)
    assert s.slot_gpus() == ["1", "3"]
    assert s.release(0) == [0] and not s.owns_slot(0)


def test_gpus_others_use_are_reported_changed_only_when_they_change():
    s = scheduler("0", "1")
    assert s.set_unavailable(["1"]) and not s.set_unavailable(["1"])
    assert [p.gpu_ids for p in s.schedule([job(0), job(1)])] == [("0",)]
