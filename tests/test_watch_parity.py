"""``hog watch DIR`` as a sweep run: it takes every scheduling option of one; a
script stays in to_run/ until it starts, so running/ holds exactly the scripts that
run and those not started when hog stops are still in to_run/ (run once, next
time); the verbs work on DIR itself; scripts see FASTGPU_ID."""
import os
import signal
from pathlib import Path

import pytest

from hog.cli.run import NOT_WATCH, run_parser, watch_parser
from tests.harness import lines_of, wait_for, write
from tests.test_gpu_checks import FakeSmi
from tests.test_queue_watch import listing, script


def gated(d: Path, name: str, ledger: Path, gate: Path, linger: float = 0) -> None:
    """A script that notes what running/ and to_run/ hold as it starts, waits for
    ``gate`` (then ``linger`` seconds more), then notes it ran."""
    script(d / "to_run" / name,
           f"echo {name} started\n"
           f"echo \"{name}: running=$(ls {d}/running | tr '\\n' ' ')"
           f"to_run=$(ls {d}/to_run | tr '\\n' ' ')\" >> {ledger}.seen\n"
           f"while [ ! -e {gate} ]; do sleep 0.02; done\n"
           f"sleep {linger}\n"
           f"echo {name} >> {ledger}\n", age_s=10)


def test_watch_takes_every_option_of_a_sweep_run_but_the_source_and_output():
    def options(parser):
        return {o for a in parser._actions if a.dest not in NOT_WATCH for o in a.option_strings}
    missing = options(run_parser()) - options(watch_parser())
    assert not missing
    for option in ("--exclusive", "--min-free-memory", "--gpu-memory", "--resources",
                   "--cpu-slots", "--on-job-end", "--on-finish", "--keep-alive",
                   "--wait-for-running", "--detach", "--resume-on-boot"):
        assert option in options(watch_parser()), option


@pytest.mark.timeout(60)
def test_exclusive_and_hooks_apply_to_watched_scripts_which_see_fastgpu_id(hq):
    smi = FakeSmi(hq.tmp)
    smi.set(used={0: 12000}, apps=[(0, os.getpid(), 12000)])    # GPU 0: someone else's
    d = hq.tmp / "w"
    for name in ("a.sh", "b.sh", "c.sh"):
        script(d / "to_run" / name, 'echo "$FASTGPU_ID $CUDA_VISIBLE_DEVICES"\n', age_s=10)
    ended = hq.tmp / "ended.txt"
    r = hq.run("watch", d, "--gpus", "0,1", "--exclusive",
               "--on-job-end", f"echo $HOG_JOB_NAME >> {ended}", env=smi.env)
    assert r.returncode == 0, r.stdout + r.stderr
    for name in ("a.sh", "b.sh", "c.sh"):
        assert (d / "complete" / f"{name}.stdout").read_text() == "1 1\n"
    assert sorted(lines_of(ended)) == ["a.sh", "b.sh", "c.sh"]


@pytest.mark.timeout(60)
def test_running_holds_exactly_the_scripts_that_run_the_rest_wait_in_to_run(hq):
    d = hq.tmp / "w"
    ledger, gate = hq.tmp / "ledger", hq.tmp / "gate"
    write(gate, "")
    for name in ("s1", "s2", "s3"):
        gated(d, name, ledger, gate)
    r = hq.run("watch", d, "--gpus", "0")
    assert r.returncode == 0, r.stdout + r.stderr
    assert [line.strip() for line in Path(f"{ledger}.seen").read_text().splitlines()] == [
        "s1: running=s1 to_run=s2 s3", "s2: running=s2 to_run=s3", "s3: running=s3 to_run="]
    assert lines_of(ledger) == ["s1", "s2", "s3"]


@pytest.mark.timeout(90)
@pytest.mark.parametrize("how", ["ctrl-c", "sigterm", "hog stop"])
def test_scripts_not_started_when_hog_stops_stay_in_to_run_and_run_once_next_time(hq, how):
    d = hq.tmp / "w"
    ledger, gate = hq.tmp / "ledger", hq.tmp / "gate"
    for name in ("s1", "s2", "s3"):     # (hog stop is taken within a tick: 0.5 s)
        gated(d, name, ledger, gate, linger=1.5 if how == "hog stop" else 0)
    watcher = hq.start("watch", d, "--gpus", "0", "--exit", "0")
    wait_for(lambda: Path(f"{ledger}.seen").exists(), timeout=20, what="s1 to start")
    assert listing(d)["running"] == ["s1"] and listing(d)["to_run"] == ["s2", "s3"]
    if how == "ctrl-c":
        watcher.signal(signal.SIGINT)
        watcher.wait_output("starting no new jobs")
        write(gate, "")
        assert watcher.wait(20) == 130
    elif how == "sigterm":
        watcher.signal(signal.SIGTERM)
        assert watcher.wait(20) == 143
    else:
        r = hq.run("stop", d)
        assert r.returncode == 0, r.stdout + r.stderr
        write(gate, "")
        watcher.wait(20)
    assert listing(d)["running"] == []
    assert listing(d)["to_run"] == ["s2", "s3"]
    assert hq.status(d)["counts"]["queued"] == 0        # read again from to_run/ next time
    write(gate, "")
    r = hq.run("watch", d, "--gpus", "0")
    assert r.returncode == 0, r.stdout + r.stderr
    ran = lines_of(ledger)
    assert sorted(ran) == (["s1", "s2", "s3"] if how != "sigterm" else ["s2", "s3"])
    assert listing(d)["to_run"] == [] and listing(d)["running"] == []
    assert sorted(n for n in listing(d)["complete"] if "." not in n) == \
        (["s1", "s2", "s3"] if how != "sigterm" else ["s2", "s3"])


def watching_two_gated_scripts(hq):
    """``hog watch`` on a directory with scripts s1 and s2, each held by one gate; s1
    has started. (directory, ledger, gate, the watcher)."""
    d = hq.tmp / "w"
    ledger, gate = hq.tmp / "ledger", hq.tmp / "gate"
    gated(d, "s1", ledger, gate)
    gated(d, "s2", ledger, gate)
    watcher = hq.start("watch", d, "--gpus", "0")
    wait_for(lambda: Path(f"{ledger}.seen").exists(), timeout=20, what="s1 to start")
    return d, ledger, gate, watcher


@pytest.mark.timeout(60)
def test_the_verbs_work_on_the_watched_directory_itself(hq):
    d, ledger, gate, watcher = watching_two_gated_scripts(hq)
    data = hq.status(d)
    assert [r["name"] for r in data["running"]] == ["s1"]
    assert data["counts"]["queued"] == 1
    text = hq.run("status", d)
    assert text.returncode == 0 and "1 running" in text.stdout, text.stdout + text.stderr
    logs = hq.run("logs", d, "s1")
    assert logs.returncode == 0 and "s1 started" in logs.stdout, logs.stdout + logs.stderr
    write(gate, "")
    assert watcher.wait(30) == 0, watcher.output
    report = hq.run("report", d)
    assert report.returncode == 0, report.stdout + report.stderr
    assert (d / "output" / "report.html").exists()


@pytest.mark.timeout(60)
def test_a_script_taken_out_of_to_run_before_it_started_never_runs(hq):
    d, ledger, gate, watcher = watching_two_gated_scripts(hq)
    wait_for(lambda: hq.status(d)["counts"]["queued"] == 1, what="s2 to be queued")
    os.rename(d / "to_run" / "s2", hq.tmp / "s2.kept")
    write(gate, "")
    watcher.wait(30)
    assert lines_of(ledger) == ["s1"]
    counts = hq.status(d)["counts"]
    assert (counts["succeeded"], counts["cancelled"]) == (1, 1)
    assert listing(d)["running"] == []


@pytest.mark.timeout(90)
def test_after_a_sigkilled_watch_the_next_runs_the_script_left_in_running_and_the_rest_once(hq):
    d = hq.tmp / "w"
    ledger, gate = hq.tmp / "ledger", hq.tmp / "gate"
    for name in ("s1", "s2", "s3"):
        gated(d, name, ledger, gate)
    watcher = hq.start("watch", d, "--gpus", "0")
    wait_for(lambda: Path(f"{ledger}.seen").exists(), timeout=20, what="s1 to start")
    wait_for(lambda: hq.status(d)["counts"]["queued"] == 2, what="s2 and s3 to be queued")
    jobs = hq.job_pids()
    watcher.signal_group(signal.SIGKILL)
    for pid in jobs:                                  # the machine went down: s1 too
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    watcher.wait(10)
    hq.wait_no_processes(timeout=10)
    assert listing(d)["running"] == ["s1"] and listing(d)["to_run"] == ["s2", "s3"]
    write(gate, "")
    r = hq.run("watch", d, "--gpus", "0")
    assert r.returncode == 0, r.stdout + r.stderr
    assert lines_of(ledger) == ["s1", "s2", "s3"]
    assert listing(d)["to_run"] == [] and listing(d)["running"] == []
    assert hq.status(d)["counts"]["succeeded"] == 3
