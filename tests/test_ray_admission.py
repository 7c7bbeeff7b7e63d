"""What hog hands to Ray, and when (``RayAdmission``): pure, no Ray needed.

Ray places the jobs; hog keeps the order and limits what waits in Ray, so that a
job asking for more GPUs than the ones before it is not starved by narrower jobs.
"""
from hog.backends.ray.backend import RayAdmission
from hog.backends.ray.resources import demand, task_options
from hog.model import Job

NODE = {"GPU": 4.0, "CPU": 2.0, "memory": 1e10, "license": 1.0}


def job(i, gpus=1, **resources):
    return Job(index=i, command="true", gpus=gpus, resources=tuple(sorted(resources.items())))


def admission(nodes=(NODE,), max_pending=None):
    a = RayAdmission(max_pending)
    a.set_nodes(list(nodes))
    return a


def test_nothing_is_handed_over_before_the_cluster_is_known():
    a = RayAdmission()
    assert not a.has_room() and not a.room()
    assert a.schedule([job(0)]) == []


def test_jobs_are_handed_over_in_order_until_enough_wait_in_ray():
    a = admission(max_pending=3)
    placed = a.schedule([job(i) for i in range(6)])
    assert [p.job_id for p in placed] == [0, 1, 2]
    assert [p.slot for p in placed] == [0, 1, 2] and all(p.gpu_ids == () for p in placed)
    a.started(0)                      # one left Ray's queue: one more may go
    assert [p.job_id for p in a.schedule([job(i) for i in range(3, 6)])] == [3]


def test_a_waiting_wider_job_holds_back_narrower_ones_behind_it():
    a = admission()
    placed = a.schedule([job(0), job(1, gpus=2), job(2), job(3, gpus=0), job(4, gpus=2)])
    # job 2 (1 GPU) would take GPUs job 1 waits for; the CPU-only job wants no GPU;
    # job 4 asks no more than job 1, so it may wait in Ray beside it
    assert [p.job_id for p in placed] == [0, 1, 3, 4]
    a.started(1)
    assert a.schedule([job(2)]) == []       # job 4 still waits for two GPUs
    a.started(4)
    assert [p.job_id for p in a.schedule([job(2)])] == [2]


def test_a_fractional_job_waits_behind_a_whole_gpu_job():
    a = admission()
    assert [p.job_id for p in a.schedule([job(0), job(1, gpus=0.5)])] == [0]
    a.started(0)
    assert [p.job_id for p in a.schedule([job(1, gpus=0.5)])] == [1]


def test_cpu_only_jobs_waiting_for_cpus_do_not_keep_gpu_jobs_back():
    a = admission(max_pending=2)
    placed = a.schedule([job(i, gpus=0) for i in range(4)] + [job(9)])
    assert [p.job_id for p in placed] == [0, 1, 9]
    assert [p.slot for p in placed] == [-1, -2, 0] and placed[0].cpu


def test_slots_are_reused_once_their_job_ended():
    a = admission()
    first = a.schedule([job(0), job(1)])
    a.release(0)
    again = a.schedule([job(2)])
    assert again[0].slot == first[0].slot
    assert a.slot_gpus() == ["ray", "ray"]


def test_what_no_node_can_run_is_said_plainly():
    a = admission(nodes=[NODE, {"GPU": 2.0, "CPU": 8.0}])
    assert a.never_fits(job(0, gpus=4)) is None
    assert "needs GPU=5 on one node" in a.never_fits(job(1, gpus=5))
    assert "the most any node has: GPU=4" in a.never_fits(job(1, gpus=5))
    assert a.never_fits(job(2, gpus=2, license=1)) is None
    assert "license=2" in a.never_fits(job(3, license=2))
    assert a.never_fits(job(4, gpus=0, CPU=8)) is None
    assert "CPU=9" in a.never_fits(job(5, gpus=0, CPU=9))
    assert "fraction of a GPU" in a.never_fits(job(6, memory=2 ** 30))
    assert "gpu_ids" in a.never_fits(Job(index=7, command="true", gpu_ids=("1",)))
    assert "reserves" in a.never_fits(job(8, GPU=1))


def test_a_job_asks_ray_for_its_gpus_and_no_cpu_unless_it_says_so():
    assert demand(job(0, gpus=2)) == {"GPU": 2.0, "CPU": 0.0}
    assert demand(job(0, gpus=0)) == {"GPU": 0.0, "CPU": 1.0}
    assert demand(job(0, gpus=1, CPU=4, license=1)) == {"GPU": 1.0, "CPU": 4.0, "license": 1.0}
    opts = task_options(job(0, gpus=0.5, license=1), "j")
    assert (opts["num_gpus"], opts["num_cpus"], opts["resources"]) == (0.5, 0, {"license": 1.0})
    assert opts["max_retries"] == 0 and opts["retry_exceptions"] is False
    assert task_options(job(0, gpus=2), "j")["num_gpus"] == 2
