"""One attempt's record (``hog.backends.attempt``), the job environment
(``hog.backends.jobenv``) and the typed messages (``hog.model``): pure, in-process."""
import pickle

import pytest

from hog.backends.attempt import Attempt
from hog.backends.jobenv import job_env
from hog.backends.ray.messages import ForSlot
from hog.messages import (
    BackendFailed,
    Dispatch,
    Ended,
    JobMsg,
    Quit,
    SlotLost,
    SourceEnd,
    SourceFailed,
    SourceTotal,
    Started,
    Stop,
    StopHow,
)
from hog.model import Job, Outcome, Status
from hog.state.jobdir import Layout

from .harness import INFO_FIELDS, USAGE_INFO_FIELDS, err, info, marker, out


def dispatch(index=3, attempt=1, slot=1, gpu_ids=("1",), env=()):
    job = Job(index=index, command="echo hi", env=env)
    return Dispatch(job=job, slot=slot, gpu_ids=gpu_ids, name=f"job_{index}", attempt=attempt)


def ended_run(layout, d, status, exit_code):
    a = Attempt.open(layout, d)
    for path in (a.out_path, a.err_path):     # the job's own output (spawn opens them)
        open(path, "w").close()
    a.started(4242, 100.0)
    return a.finished(status, exit_code, None, 101.5)


def ended_unstarted(layout, d, status, exit_code):
    return Attempt.open(layout, d).ended_unrun(status, "could not start the job: boom",
                                               note="boom", started=100.0, ended=101.5)


def ended_lost(layout, d, status, exit_code):
    a = Attempt.open(layout, d)
    a.started(4242, 100.0)
    a.release()             # (its slot died: its lock went with it)
    return Attempt.reopen(layout, d, pid=4242).ended_unrun(status, "its slot died",
                                                           started=100.0, ended=101.5)


def ended_remote(layout, d, status, exit_code):
    a = Attempt.open(layout, d)
    a.open_output()
    a.started(4242, 100.0, host="node-a", node="abc123", gpu_ids=["2"])
    a.write("out", b"streamed\n")
    return a.finished(status, exit_code, None, 101.5)


ENDINGS = [(end, status, code) for end in (ended_run, ended_unstarted, ended_lost, ended_remote)
           for status, code in ((Status.SUCCEEDED, 0), (Status.FAILED, 1),
                                (Status.INTERRUPTED, None))
           if status is not Status.SUCCEEDED or end in (ended_run, ended_remote)]


@pytest.mark.parametrize("end,status,exit_code", ENDINGS)
def test_every_ending_leaves_exactly_one_marker_and_the_same_info_fields(tmp_path, end, status,
                                                                         exit_code):
    layout = Layout(str(tmp_path))
    outcome = end(layout, dispatch(), status, exit_code)
    folder = tmp_path / "job_3"
    assert marker(folder) == ("SUCCESS" if status is Status.SUCCEEDED else "FAILURE")
    data = info(folder)
    extra = ["node"] if end is ended_remote else []
    assert list(data) == list(INFO_FIELDS) + extra + list(USAGE_INFO_FIELDS)
    assert data["status"] == status.value and data["duration_s"] == 1.5
    assert (folder / "job_3.OUT").exists() and (folder / "job_3.ERR").exists()
    assert outcome.status is status and outcome.err_path == str(folder / "job_3.ERR")
    assert (outcome.started, outcome.ended, outcome.attempt) == (100.0, 101.5, 1)


def test_an_attempt_that_did_not_run_says_why_in_its_err_and_notes_it(tmp_path):
    layout = Layout(str(tmp_path))
    outcome = ended_unstarted(layout, dispatch(), Status.FAILED, None)
    folder = tmp_path / "job_3"
    assert err(folder) == "hog: could not start the job: boom\n" and out(folder) == ""
    assert outcome.note == "boom" and outcome.pid is None and info(folder)["pid"] is None


def test_a_lost_attempt_keeps_its_output_and_pid_and_adds_why(tmp_path):
    layout = Layout(str(tmp_path))
    d = dispatch()
    Attempt.open(layout, d).started(4242, 100.0)
    (tmp_path / "job_3" / "job_3.ERR").write_text("partial\n")
    outcome = Attempt.reopen(layout, d, pid=4242).ended_unrun(Status.INTERRUPTED, "gone",
                                                              started=100.0, ended=101.0)
    assert err(tmp_path / "job_3") == "partial\nhog: gone\n"
    assert outcome.pid == 4242 and outcome.note == "gone"
    assert info(tmp_path / "job_3")["pid"] == 4242


def test_a_second_attempt_keeps_the_first_under_numbered_names(tmp_path):
    layout = Layout(str(tmp_path))
    ended_run(layout, dispatch(attempt=1), Status.FAILED, 1)
    ended_run(layout, dispatch(attempt=2), Status.SUCCEEDED, 0)
    names = sorted(p.name for p in (tmp_path / "job_3").iterdir())
    assert names == ["FAILURE.1", "INFO", "INFO.1", "SUCCESS", "job_3.1.ERR", "job_3.1.OUT",
                     "job_3.ERR", "job_3.OUT"]


def test_a_remote_attempt_records_its_host_node_gpus_and_streamed_output(tmp_path):
    layout = Layout(str(tmp_path))
    ended_remote(layout, dispatch(gpu_ids=()), Status.SUCCEEDED, 0)
    data = info(tmp_path / "job_3")
    assert (data["host"], data["node"], data["gpus"]) == ("node-a", "abc123", ["2"])
    assert out(tmp_path / "job_3") == "streamed\n"


def test_the_job_environment_pins_gpus_and_hog_variables_over_the_jobs_own():
    d = dispatch(slot=-2, gpu_ids=("0", "3"), attempt=2,
                 env=(("HOG_SLOT", "mine"), ("CUDA_DEVICE_ORDER", "FASTEST_FIRST"), ("A", "1")))
    env = job_env({"PATH": "/bin", "CUDA_VISIBLE_DEVICES": "all"}, d, d.gpu_ids, "/o/job_3")
    assert env == {"PATH": "/bin", "CUDA_VISIBLE_DEVICES": "0,3", "FASTGPU_ID": "0,3",
                   "CUDA_DEVICE_ORDER":
                   "FASTEST_FIRST", "A": "1", "HOG_JOB_INDEX": "3", "HOG_JOB_NAME": "job_3",
                   "HOG_JOB_DIR": "/o/job_3", "HOG_SLOT": "cpu1", "HOG_ATTEMPT": "2"}
    assert job_env({}, dispatch(), ("1",), "/o")["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"


def test_messages_cross_a_pipe_unchanged():
    outcome = Outcome(index=1, name="a", slot=0, status=Status.FAILED, exit_code=1, signal=None,
                      started=1.0, ended=2.0)
    messages = [Started(0, 1, 99, 1.0), Started(0, 1, 99, 1.0, "h", ("2",)), Ended(outcome),
                SlotLost(0, "why"), BackendFailed("why"), Stop(StopHow.CANCEL), Quit(),
                ForSlot(3, dispatch()), JobMsg((Job(0, "true"),)), SourceTotal(5), SourceEnd(5),
                SourceFailed("bad")]
    for m in messages:
        assert pickle.loads(pickle.dumps(m, pickle.HIGHEST_PROTOCOL)) == m


def test_how_a_job_is_stopped_decides_how_it_is_recorded():
    assert StopHow.KILL.status is Status.INTERRUPTED
    assert StopHow.CANCEL.status is Status.CANCELLED


def test_status_meanings_match_the_lists_they_replace():
    assert set(Status.having("finished")) == set(Status) - {Status.QUEUED, Status.HANDED,
                                                             Status.RUNNING}
    assert {s.value for s in Status.having("counts_as_failure")} == {
        "failed", "timeout", "interrupted", "unschedulable", "skipped"}
    assert [s.value for s in Status.having("rerunnable")] == [
        "failed", "interrupted", "timeout", "cancelled", "skipped", "unschedulable"]
    assert [s.value for s in Status.having("resumed")] == [
        "failed", "interrupted", "timeout", "skipped", "unschedulable"]
    assert Status.sql_list([Status.QUEUED, "running"]) == "('queued', 'running')"
