"""A job folder is only ever added to, holds at most one marker, and nothing hog writes
in its output directory follows a symbolic link.

Real runs (``python -m hog``), real symlinks (some planted by another user, ``nobody``),
and a ledger outside the output directory that each job appends to, so that how often a
job ran is counted where hog cannot touch it. The folder layer itself is also driven
in-process (``Attempt``) for the cases a run reaches only by chance.
"""
import grp
import os
import shutil
import signal
import stat
import subprocess
import uuid
from pathlib import Path

import pytest

from hog.backends.attempt import Attempt
from hog.messages import Dispatch
from hog.model import Job, Status
from hog.state.files import UnsafePath
from hog.state.jobdir import Layout

from .harness import (
    err,
    info,
    job_dir,
    job_file,
    job_rows,
    lines_of,
    marker,
    markers,
    out,
    run_hog,
    start_hog,
    wait_for,
)

NOBODY = 65534
# planting as another user needs to become one
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="plants files as another user (root)")


def numbered(folder: Path):
    """The names in a folder, sorted."""
    return sorted(p.name for p in folder.iterdir())


def no_temporaries(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if ".tmp" in p.name]


def fingerprint(path: Path):
    st = os.lstat(path)
    return path.read_bytes(), st.st_mtime_ns, stat.S_IMODE(st.st_mode)


# ------------------------------------------------------------------ one marker
def test_a_job_unschedulable_then_run_keeps_one_marker_and_the_unschedulable_attempt_as_1(
        tmp_path):
    ledger = tmp_path / "ledger"
    job_file(tmp_path, f"echo ran >> {ledger}  # hog: gpus=2")
    first = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0", timeout=30)
    assert first.returncode == 1, first.stderr
    d = job_dir(tmp_path, 0)
    assert markers(d) == ["FAILURE"] and info(d)["status"] == "unschedulable"

    second = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0,1", timeout=30)
    assert second.returncode == 0, second.stdout + second.stderr
    assert markers(d) == ["SUCCESS"]
    assert numbered(d) == ["FAILURE.1", "INFO", "INFO.1", "SUCCESS", "job_0.1.ERR",
                           "job_0.1.OUT", "job_0.ERR", "job_0.OUT"]
    assert "unschedulable" in (d / "INFO.1").read_text()
    assert "needs" in (d / "job_0.1.ERR").read_text()
    assert (d / "FAILURE.1").read_text() == (d / "INFO.1").read_text()
    assert (d / "SUCCESS").stat().st_ino == (d / "INFO").stat().st_ino     # a link, made last
    assert lines_of(ledger) == ["ran"]


def _ran_ok(tmp_path, ledger):
    job_file(tmp_path, f"echo ok >> {ledger}")
    assert run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0").returncode == 0
    return "SUCCESS", "succeeded", 1


def _failed(tmp_path, ledger):
    job_file(tmp_path, f"echo no >> {ledger}; exit 3")
    assert run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0").returncode == 1
    return "FAILURE", "failed", 1


def _could_not_start(tmp_path, ledger):
    job_file(tmp_path, f"echo x >> {ledger}  # hog: cwd={tmp_path / 'missing'}")
    assert run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0").returncode == 1
    assert "could not start the job" in err(job_dir(tmp_path, 0))
    return "FAILURE", "failed", 0


def _unschedulable(tmp_path, ledger):
    job_file(tmp_path, f"echo x >> {ledger}  # hog: gpus=2")
    assert run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0").returncode == 1
    return "FAILURE", "unschedulable", 0


def _skipped(tmp_path, ledger):
    job_file(tmp_path, "exit 1  # hog: name=prep", f"echo x >> {ledger}  # hog: after=prep")
    assert run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0").returncode == 1
    return "FAILURE", "skipped", 0


def _cancelled(tmp_path, ledger):
    job_file(tmp_path, f"echo x >> {ledger}; sleep 30")
    hog = start_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0", "--grace", "1")
    wait_for(lambda: lines_of(ledger), 15, what="the job to start")
    assert run_hog(tmp_path, "kill", "output", "0", timeout=30).returncode == 0
    hog.wait(30)
    return "FAILURE", "cancelled", 1


def _interrupted(tmp_path, ledger):
    job_file(tmp_path, f"echo x >> {ledger}; sleep 30")
    hog = start_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0", "--grace", "1")
    wait_for(lambda: lines_of(ledger), 15, what="the job to start")
    hog.signal(signal.SIGTERM)
    assert hog.wait(30) == 143
    return "FAILURE", "interrupted", 1


@pytest.mark.parametrize("ending", [_ran_ok, _failed, _could_not_start, _unschedulable,
                                    _skipped, _cancelled, _interrupted],
                         ids=lambda f: f.__name__.strip("_"))
def test_every_way_an_attempt_ends_leaves_exactly_one_marker_and_no_temporary_file(
        tmp_path, ending):
    ledger = tmp_path / "ledger"
    expected, status, runs = ending(tmp_path, ledger)
    d = job_dir(tmp_path, 1 if status == "skipped" else 0)
    assert markers(d) == [expected]
    assert info(d)["status"] == status
    assert (d / expected).stat().st_ino == (d / "INFO").stat().st_ino
    assert (d / f"{d.name}.OUT").exists() and (d / f"{d.name}.ERR").exists()
    assert no_temporaries(d)
    assert len(lines_of(ledger)) == runs


def test_every_ending_again_on_resume_moves_the_earlier_attempt_aside_first(tmp_path):
    """A failed, a could-not-start, an unschedulable and a skipped job, run again on a
    runner where each succeeds: each folder has one marker and keeps the first attempt."""
    ledger, fixed = tmp_path / "ledger", tmp_path / "fixed"
    (tmp_path / "later").mkdir()
    job_file(tmp_path,
             f"echo 0 >> {ledger}; test -e {fixed}  # hog: name=prep",
             f"echo 1 >> {ledger}  # hog: cwd={tmp_path / 'later' / 'sub'}",
             f"echo 2 >> {ledger}  # hog: gpus=2",
             f"echo 3 >> {ledger}  # hog: after=prep")
    assert run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0").returncode == 1
    before = {i: markers(job_dir(tmp_path, i)) for i in range(4)}
    assert before == {i: ["FAILURE"] for i in range(4)}
    fixed.touch()
    (tmp_path / "later" / "sub").mkdir()
    again = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0,1")
    assert again.returncode == 0, again.stdout + again.stderr
    for i in range(4):
        d = job_dir(tmp_path, i)
        assert markers(d) == ["SUCCESS"], numbered(d)
        assert (d / "FAILURE.1").exists() and (d / "INFO.1").exists()
        assert (d / f"job_{i}.1.ERR").exists() and no_temporaries(d)
    assert sorted(lines_of(ledger)) == ["0", "0", "1", "2", "3"]


def test_a_retried_job_keeps_every_attempt_and_never_shows_two_markers(tmp_path):
    ledger = tmp_path / "ledger"
    job_file(tmp_path, f"echo $HOG_ATTEMPT >> {ledger}; echo try $HOG_ATTEMPT; "
                       f"test $HOG_ATTEMPT -ge 3  # hog: retries=3")
    hog = start_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0")
    d = job_dir(tmp_path, 0)
    seen = set()
    while hog.alive():                         # watch the folder while it changes
        if d.exists():
            found = markers(d)
            seen.add(len(found))
    assert hog.wait(30) == 0, hog.output
    assert 2 not in seen
    assert markers(d) == ["SUCCESS"]
    assert numbered(d) == ["FAILURE.1", "FAILURE.2", "INFO", "INFO.1", "INFO.2", "SUCCESS",
                           "job_0.1.ERR", "job_0.1.OUT", "job_0.2.ERR", "job_0.2.OUT",
                           "job_0.ERR", "job_0.OUT"]
    assert [(d / f"job_0.{n}.OUT").read_text() for n in (1, 2)] == ["try 1\n", "try 2\n"]
    assert out(d) == "try 3\n" and info(d)["attempt"] == 3
    assert lines_of(ledger) == ["1", "2", "3"]


# ------------------------------------------------------------------ the folder layer itself
def dispatch(attempt=1, index=0):
    return Dispatch(job=Job(index=index, command="true"), slot=1, gpu_ids=("0",),
                    name=f"job_{index}", attempt=attempt)


def ended(layout, d, status=Status.FAILED, text=b"first\n"):
    a = Attempt.open(layout, d)
    o, _ = a.streams()
    os.write(o, text)
    a.started(111, 1.0)
    return a.finished(status, 1 if status is Status.FAILED else 0, None, 2.0)


def test_a_new_attempt_with_the_same_number_moves_the_ended_one_aside_never_overwrites(
        tmp_path):
    """The store was lost (attempt numbers start again) but the folder was not."""
    layout = Layout(str(tmp_path))
    ended(layout, dispatch(1))
    ended(layout, dispatch(1), Status.SUCCEEDED, b"second\n")
    d = tmp_path / "job_0"
    assert markers(d) == ["SUCCESS"]
    assert (d / "job_0.1.OUT").read_text() == "first\n" and out(d) == "second\n"
    assert "failed" in (d / "FAILURE.1").read_text()


def test_numbered_names_already_taken_are_skipped_not_overwritten(tmp_path):
    layout = Layout(str(tmp_path))
    ended(layout, dispatch(1))
    d = tmp_path / "job_0"
    (d / "INFO.1").write_text("not hog's\n")
    ended(layout, dispatch(2), Status.SUCCEEDED)
    assert (d / "INFO.1").read_text() == "not hog's\n"
    assert (d / "FAILURE.2").exists() and (d / "job_0.2.OUT").read_text() == "first\n"
    assert markers(d) == ["SUCCESS"]


def test_an_attempt_ended_without_its_consumer_moves_aside_an_earlier_ended_attempt(tmp_path):
    """The consumer died before it made attempt 2's folder: the runner's record of
    attempt 2 keeps attempt 1's files and leaves one marker."""
    layout = Layout(str(tmp_path))
    ended(layout, dispatch(1))
    Attempt.reopen(layout, dispatch(2), pid=None).ended_unrun(Status.INTERRUPTED, "slot died")
    d = tmp_path / "job_0"
    assert markers(d) == ["FAILURE"] and (d / "FAILURE.1").exists()
    assert (d / "job_0.1.OUT").read_text() == "first\n"
    assert info(d)["attempt"] == 2 and err(d) == "hog: slot died\n"


def test_an_attempt_ended_without_its_consumer_adds_to_its_own_files(tmp_path):
    layout = Layout(str(tmp_path))
    a = Attempt.open(layout, dispatch(1))
    o, e = a.streams()
    os.write(o, b"partial\n")
    a.started(4242, 1.0)
    a.close_output()
    a.release()             # (its slot died: its lock went with it)
    Attempt.reopen(layout, dispatch(1), pid=4242).ended_unrun(Status.INTERRUPTED, "slot died")
    d = tmp_path / "job_0"
    assert numbered(d) == ["FAILURE", "INFO", "job_0.ERR", "job_0.OUT"]
    assert out(d) == "partial\n" and err(d) == "hog: slot died\n"


def test_where_hard_links_fail_the_marker_is_a_new_file_never_an_overwrite(tmp_path,
                                                                           monkeypatch):
    def no_links(*args, **kw):
        raise PermissionError(1, "Operation not permitted")
    monkeypatch.setattr(os, "link", no_links)
    layout = Layout(str(tmp_path))
    ended(layout, dispatch(1))
    ended(layout, dispatch(2), Status.SUCCEEDED)
    d = tmp_path / "job_0"
    assert markers(d) == ["SUCCESS"] and (d / "SUCCESS").read_text() == (d / "INFO").read_text()
    assert (d / "FAILURE.1").read_text() == (d / "INFO.1").read_text()


def test_a_second_ending_of_the_same_attempt_adds_no_second_marker(tmp_path):
    layout = Layout(str(tmp_path))
    a = Attempt.open(layout, dispatch(1))
    a.started(4242, 1.0)
    a.release()             # (as if its slot had died; a live one's lock is waited for)
    Attempt.reopen(layout, dispatch(1), pid=4242).ended_unrun(Status.INTERRUPTED, "lost")
    a.finished(Status.SUCCEEDED, 0, None, 3.0)
    d = tmp_path / "job_0"
    assert markers(d) == ["FAILURE"] and info(d)["status"] == "interrupted"


# ------------------------------------------------------------------ symlinks
@pytest.fixture
def shared(tmp_path):
    """A directory like /tmp (world-writable, sticky) outside the test's private tmp, with
    an output directory in it that ``nobody`` can write into; removed afterwards."""
    top = Path(f"/tmp/hog-shared-{uuid.uuid4().hex[:12]}")
    top.mkdir(mode=0o700)
    os.chmod(top, 0o1777)
    output = top / "out"
    output.mkdir()
    os.chmod(output, 0o777)
    try:
        yield output
    finally:
        shutil.rmtree(top, ignore_errors=True)


def as_nobody(*argv):
    subprocess.run(list(argv), check=True, user=NOBODY, group=NOBODY, cwd="/")


@as_root
@pytest.mark.timeout(60)
@pytest.mark.parametrize("plant", ["link", "folder"])
def test_a_job_folder_planted_by_another_user_is_refused_and_nothing_written_through_it(
        tmp_path, shared, plant):
    """While job 0 runs, ``nobody`` plants job 1's folder in the shared output directory:
    a link to the user's private directory, or a folder of their own."""
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    (private / "keys").write_text("secret\n")
    before = (numbered(private), fingerprint(private / "keys"), os.stat(private).st_mtime_ns)
    ledger, go = tmp_path / "ledger", tmp_path / "go"
    job_file(tmp_path, f"echo 0 >> {ledger}; while [ ! -e {go} ]; do sleep 0.05; done",
             f"echo 1 >> {ledger}")
    hog = start_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0", "--output_dir", shared)
    wait_for(lambda: lines_of(ledger) == ["0"], 15, what="job 0 to start")
    if plant == "link":
        as_nobody("ln", "-s", str(private), str(shared / "job_1"))
        said = f"{shared / 'job_1'}: is a symbolic link"
    else:
        as_nobody("mkdir", "-m", "777", str(shared / "job_1"))
        said = f"{shared / 'job_1'}: owned by uid {NOBODY}"
    go.touch()
    assert hog.wait(30) == 1, hog.output
    assert said in hog.output
    assert (numbered(private), fingerprint(private / "keys"),
            os.stat(private).st_mtime_ns) == before
    if plant == "folder":
        assert not list((shared / "job_1").iterdir())
    assert lines_of(ledger) == ["0"]                    # job 1 never ran
    row = job_rows(shared)[1]
    assert row["status"] == "failed" and said in row["note"]
    assert marker(shared / "job_0") == "SUCCESS"


@pytest.mark.parametrize("planted", ["job_0.OUT", "job_0.ERR", "INFO", "FAILURE"])
def test_a_file_of_a_job_folder_replaced_by_a_link_is_refused_and_its_target_untouched(
        tmp_path, planted):
    ledger, fixed = tmp_path / "ledger", tmp_path / "fixed"
    target = tmp_path / "elsewhere"
    target.write_text("precious\n")
    os.utime(target, ns=(1_000_000_000, 1_000_000_000))
    before = fingerprint(target)
    job_file(tmp_path, f"echo ran >> {ledger}; test -e {fixed}")
    assert run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0").returncode == 1
    d = job_dir(tmp_path, 0)
    (d / planted).unlink()
    (d / planted).symlink_to(target)
    fixed.touch()
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0")
    assert r.returncode == 1
    assert f"{d / planted}: is a symbolic link" in r.stdout + r.stderr
    assert fingerprint(target) == before
    assert lines_of(ledger) == ["ran"]                  # the second attempt never ran
    assert (d / planted).is_symlink() and not (d / "INFO.1").exists()


def test_the_folder_layer_refuses_a_link_before_writing_anything(tmp_path):
    layout = Layout(str(tmp_path))
    target = tmp_path / "target"
    target.write_text("x\n")
    os.symlink(target, tmp_path / "job_0")
    with pytest.raises(UnsafePath, match="job_0: is a symbolic link"):
        Attempt.open(layout, dispatch(1))
    (tmp_path / "job_0").unlink()
    (tmp_path / "job_0").mkdir()
    (tmp_path / "job_0" / "job_0.OUT.tmp1").symlink_to(target)   # (not a name hog uses)
    (tmp_path / "job_0" / "job_0.ERR").symlink_to(target)
    with pytest.raises(UnsafePath, match="job_0.ERR: is a symbolic link"):
        Attempt.open(layout, dispatch(1))
    assert target.read_text() == "x\n"


@pytest.mark.parametrize("planted", [".hog", ".hog/hog.sqlite"])
def test_a_state_folder_or_store_planted_as_a_link_is_refused(tmp_path, planted):
    elsewhere = tmp_path / "theirs"
    elsewhere.mkdir(mode=0o700)
    (tmp_path / "output" / ".hog").mkdir(parents=True, mode=0o700)
    if planted == ".hog":
        (tmp_path / "output" / ".hog").rmdir()
        (tmp_path / "output" / ".hog").symlink_to(elsewhere)
    else:
        (tmp_path / "output" / planted).symlink_to(elsewhere / "hog.sqlite")
    job_file(tmp_path, "true")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0")
    assert r.returncode == 2
    assert f"{planted}: " in r.stderr and "symbolic link" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert list(elsewhere.iterdir()) == []
    assert not job_dir(tmp_path, 0).exists()


def test_results_planted_as_a_link_are_not_written_through(tmp_path):
    target = tmp_path / "elsewhere.jsonl"
    target.write_text("precious\n")
    before = fingerprint(target)
    (tmp_path / "output").mkdir()
    (tmp_path / "output" / "results.jsonl").symlink_to(target)
    job_file(tmp_path, "true")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0")
    assert "results.jsonl: is a symbolic link" in r.stderr
    assert fingerprint(target) == before
    report = run_hog(tmp_path, "report", "output")
    assert "results.jsonl: is a symbolic link" in report.stderr
    assert fingerprint(target) == before


# ------------------------------------------------------------------ where the output lives
@pytest.fixture
def parent_of_mode():
    made = []

    def make(mode: int) -> Path:
        top = Path(f"/tmp/hog-parent-{uuid.uuid4().hex[:12]}")
        top.mkdir(mode=0o700)
        os.chmod(top, mode)
        made.append(top)
        return top
    yield make
    for top in made:
        shutil.rmtree(top, ignore_errors=True)


def test_an_output_directory_in_a_world_writable_parent_that_is_not_sticky_is_refused(
        tmp_path, parent_of_mode):
    top = parent_of_mode(0o777)
    job_file(tmp_path, f"echo ran >> {tmp_path / 'ledger'}")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0", "--output_dir", top / "out")
    assert r.returncode == 2
    assert f"its parent {top} is writable by others and not sticky" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (top / "out").exists() and not (tmp_path / "ledger").exists()
    added = run_hog(tmp_path, "add", top / "q", "--", "echo hi")
    assert added.returncode == 2 and "not sticky" in added.stderr


@as_root
def test_an_output_directory_in_a_sticky_parent_like_tmp_is_accepted_when_it_is_yours(
        tmp_path, parent_of_mode):
    top = parent_of_mode(0o1777)
    job_file(tmp_path, f"echo ran >> {tmp_path / 'ledger'}")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0", "--output_dir", top / "out")
    assert r.returncode == 0, r.stderr
    assert marker(top / "out" / "job_0") == "SUCCESS"
    as_nobody("mkdir", str(top / "theirs"))
    os.chmod(top / "theirs", 0o777)
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0", "--output_dir",
                top / "theirs")
    assert r.returncode == 2 and f"owned by uid {NOBODY}" in r.stderr
    assert lines_of(tmp_path / "ledger") == ["ran"]


def test_a_planted_link_in_a_job_folder_never_shows_its_target_in_logs_or_the_report(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("the-password\n")
    job_file(tmp_path, "echo mine; echo oops >&2; exit 1")
    assert run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0").returncode == 1
    d = job_dir(tmp_path, 0)
    for name in ("job_0.OUT", "job_0.ERR", "INFO"):
        (d / name).unlink()
        (d / name).symlink_to(secret)
    logs = run_hog(tmp_path, "logs", "output", "0")
    assert "the-password" not in logs.stdout + logs.stderr
    report = run_hog(tmp_path, "report", "output")
    assert report.returncode == 0, report.stderr
    assert "the-password" not in (tmp_path / "output" / "report.html").read_text()
    assert "the-password" not in (tmp_path / "output" / "results.jsonl").read_text()


def test_a_move_aside_cut_short_by_a_crash_is_completed_under_the_same_number(tmp_path):
    layout = Layout(str(tmp_path))
    ended(layout, dispatch(1))
    d = tmp_path / "job_0"
    os.rename(d / "FAILURE", d / "FAILURE.1")       # killed right after the marker moved
    ended(layout, dispatch(2), Status.SUCCEEDED)
    assert numbered(d) == ["FAILURE.1", "INFO", "INFO.1", "SUCCESS", "job_0.1.ERR",
                           "job_0.1.OUT", "job_0.ERR", "job_0.OUT"]


def _a_shared_group():
    """A group with members (so writable by others through it), if there is one."""
    for g in grp.getgrall():
        if g.gr_gid != os.getegid() and [m for m in g.gr_mem if m]:
            return g.gr_gid
    return None


@as_root
def test_a_group_writable_parent_counts_as_others_only_when_the_group_is_more_than_you(
        tmp_path, parent_of_mode):
    job_file(tmp_path, "true")
    own = parent_of_mode(0o770)                 # your own (user-private) group may write
    assert run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0", "--output_dir",
                   own / "out").returncode == 0
    shared_gid = _a_shared_group()
    if shared_gid is None:
        pytest.skip("no group with members on this machine")
    theirs = parent_of_mode(0o770)
    os.chown(theirs, -1, shared_gid)
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0", "--output_dir",
                theirs / "out")
    assert r.returncode == 2 and "writable by others and not sticky" in r.stderr
