"""A Ray node that dies mid-job: its jobs are retried as their ``retries`` allow, each
attempt kept in the job's folder, none run twice behind hog's back, none lost.

A second node joins the session's cluster (``ray start --address``, 4 more fake
GPUs, on 127.0.0.1 in the same namespace); eight 1-GPU jobs fill both nodes; then
the second node's raylet is killed. Its workers go with it, and each worker's
keeper ends the process groups of the jobs it ran, so those jobs do not carry on
unseen while hog runs them again on the head.
"""
import os
import signal

import pytest

from .harness import info, job_dir, job_file, marker, out, pid_alive, read_environ, wait_for
from .ray_support import descendants
from .test_ray_backend import ray_hog, status_json  # noqa: F401 - ray_hog is a fixture

pytestmark = pytest.mark.timeout(300)


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def job_index(pid: int):
    for entry in read_environ(pid) or []:
        if entry.startswith(b"HOG_JOB_INDEX="):
            return int(entry.split(b"=", 1)[1])
    return None


def test_jobs_of_a_node_that_dies_are_retried_elsewhere_once(ray_cluster, ray_hog, tmp_path):  # noqa: F811
    node = ray_cluster.start_node("--address", ray_cluster.address, "--num-gpus", "4",
                                  "--num-cpus", "1")
    release = tmp_path / "release"
    ran = tmp_path / "ran_$HOG_JOB_INDEX"
    jobs = job_file(tmp_path, *[f'echo "$HOG_ATTEMPT $PPID" >> {ran}; '
                                f'while [ ! -e {release} ]; do sleep 0.1; done; echo finished'
                                f'   # hog: retries=1'] * 8)
    hog = ray_hog.start("--job_file", jobs)
    wait_for(lambda: all((tmp_path / f"ran_{i}").exists() for i in range(8)), timeout=90,
             what="eight jobs running on the two nodes")
    on_node = {job_index(p): p for p in descendants(node.pid) if job_index(p) is not None
               and os.path.basename(cmdline(p).split(" ")[0]) == "bash"}
    assert len(on_node) == 4, f"expected 4 jobs on the second node, found {sorted(on_node)}" \
        + "".join(f"\n{p} {cmdline(p)[:80]}" for p in descendants(node.pid))
    raylet = [p for p in descendants(node.pid) if "raylet/raylet" in cmdline(p)]
    assert len(raylet) == 1
    dead_node = info(job_dir(tmp_path, next(iter(on_node))))["node"]

    for pid in [node.pid] + raylet:                 # the node's raylet dies
        os.kill(pid, signal.SIGKILL)
    node.wait(10)
    # its workers exit, and their keepers end the jobs they ran: nothing runs unseen
    wait_for(lambda: not any(pid_alive(p) for p in on_node.values()), timeout=60,
             what="the dead node's jobs to be ended")
    wait_for(lambda: all((job_dir(tmp_path, i) / "FAILURE").exists() for i in on_node),
             timeout=60, what="the dead node's jobs to be recorded as failed")
    release.write_text("")
    assert hog.wait(120) == 0, hog.log.read_text()

    for i in range(8):
        folder = job_dir(tmp_path, i)
        lines = (tmp_path / f"ran_{i}").read_text().splitlines()
        assert marker(folder) == "SUCCESS" and out(folder) == "finished\n"
        if i in on_node:
            first = info(folder).copy()
            assert [line.split()[0] for line in lines] == ["1", "2"], lines
            old = info_at(folder, 1)
            assert (old["status"], old["attempt"], old["node"]) == ("failed", 1, dead_node)
            assert "Ray node died" in (folder / f"{folder.name}.1.ERR").read_text() or \
                "Ray worker died" in (folder / f"{folder.name}.1.ERR").read_text()
            assert (folder / "FAILURE.1").exists()
            assert first["attempt"] == 2 and first["node"] != dead_node
        else:
            assert [line.split()[0] for line in lines] == ["1"], lines
            assert info(folder)["attempt"] == 1 and not (folder / "INFO.1").exists()
    counts = status_json(tmp_path)["counts"]
    assert {k: n for k, n in counts.items() if n} == {"succeeded": 8}
    assert "retrying" in hog.log.read_text()


def info_at(folder, attempt: int) -> dict:
    import yaml
    return yaml.safe_load((folder / f"INFO.{attempt}").read_text())
