"""``hog watch DIR``: scripts dropped into DIR/to_run/ run in natural order and
end in complete/ or fail/ with .stdout, .stderr and .exitcode beside them; a
half-copied file is not started before it settles; a name clash loses nothing;
``--exit 0`` keeps watching until SIGTERM."""
import os
import signal
import time
from pathlib import Path

import pytest

from tests.harness import wait_for, write

FOLDERS = ("to_run", "running", "complete", "fail")


def script(path: Path, body: str, executable: bool = False, age_s: float = 0) -> Path:
    write(path, ("#!/bin/bash\n" if executable else "") + body)
    if executable:
        os.chmod(path, 0o755)
    if age_s:                                   # copied in long ago: settled already
        then = time.time() - age_s
        os.utime(path, (then, then))
    return path


def listing(d: Path) -> dict:
    return {sub: sorted(p.name for p in (d / sub).iterdir()) if (d / sub).exists() else []
            for sub in FOLDERS}


def scripts_in(d: Path) -> dict:
    """Every script file (not its .stdout/.stderr/.exitcode) anywhere under d, by content."""
    found = {}
    for sub in FOLDERS:
        for p in (d / sub).iterdir():
            if not p.name.endswith((".stdout", ".stderr", ".exitcode")):
                found[p.read_text()] = f"{sub}/{p.name}"
    return found


@pytest.mark.timeout(60)
def test_watch_runs_scripts_in_natural_order_and_files_each_with_its_output_and_exit_code(hq):
    d = hq.tmp / "w"
    order = hq.tmp / "order.txt"
    for name, code, executable in (("s10", 0, True), ("s2", 0, False), ("s1", 0, False),
                                   ("s3", 5, True)):
        script(d / "to_run" / name,
               f"echo {name} >> {order}\necho out-{name}\necho err-{name} >&2\nexit {code}\n",
               executable=executable, age_s=10)
    r = hq.run("watch", d, "--gpus", "0", "--exit", "1", timeout=60)
    assert r.returncode == 1, r.stdout + r.stderr          # s3 failed
    assert order.read_text().split() == ["s1", "s2", "s3", "s10"]
    assert listing(d) == {
        "to_run": [], "running": [],
        "complete": [f"{n}{ext}" for n in ("s1", "s10", "s2")
                     for ext in ("", ".exitcode", ".stderr", ".stdout")],
        "fail": ["s3", "s3.exitcode", "s3.stderr", "s3.stdout"]}
    for name, where, code in (("s1", "complete", 0), ("s10", "complete", 0),
                              ("s3", "fail", 5)):
        base = d / where / name
        assert (base.parent / f"{name}.stdout").read_text() == f"out-{name}\n"
        assert (base.parent / f"{name}.stderr").read_text() == f"err-{name}\n"
        assert (base.parent / f"{name}.exitcode").read_text().strip() == str(code)


@pytest.mark.timeout(60)
def test_a_half_copied_script_is_not_started_before_it_has_settled(hq):
    d = hq.tmp / "w"
    half = d / "to_run" / "copy.sh"
    write(half, "echo first-half\n")
    watcher = hq.start("watch", d, "--gpus", "0", "--exit", "1")
    time.sleep(0.5)                           # the copy pauses (shorter than hog's settle time)
    with open(half, "a") as f:
        f.write("echo second-half\n")
    assert watcher.wait(30) == 0, watcher.output
    done = d / "complete" / "copy.sh"
    assert done.read_text() == "echo first-half\necho second-half\n"
    assert (d / "complete" / "copy.sh.stdout").read_text() == "first-half\nsecond-half\n"
    assert listing(d)["to_run"] == [] and listing(d)["running"] == []


@pytest.mark.timeout(60)
def test_a_name_clash_in_complete_or_running_loses_no_script(hq):
    d = hq.tmp / "w"
    write(d / "complete" / "job.sh", "echo old-job\n")          # from an earlier round
    write(d / "running" / "other.sh", "echo stale-other\n")     # left behind by someone
    script(d / "to_run" / "job.sh", "echo new-job\n", age_s=10)
    script(d / "to_run" / "other.sh", "echo new-other\n", age_s=10)
    r = hq.run("watch", d, "--gpus", "0", "--exit", "1", timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    found = scripts_in(d)
    assert set(found) == {"echo old-job\n", "echo stale-other\n", "echo new-job\n",
                          "echo new-other\n"}, found
    assert found["echo old-job\n"] == "complete/job.sh"        # untouched
    assert found["echo stale-other\n"] == "running/other.sh"   # untouched
    new_job = d / found["echo new-job\n"]
    new_other = d / found["echo new-other\n"]
    assert (new_job.parent.name, new_job.name) == ("complete", "job.sh.1")
    assert (new_other.parent.name, new_other.name) == ("complete", "other.sh.1")
    assert Path(f"{new_job}.stdout").read_text() == "new-job\n"
    assert Path(f"{new_other}.stdout").read_text() == "new-other\n"
    assert listing(d)["to_run"] == []


@pytest.mark.timeout(60)
def test_watch_exit_0_keeps_watching_for_new_scripts_until_sigterm_which_exits_143(hq):
    d = hq.tmp / "w"
    d.mkdir()
    watcher = hq.start("watch", d, "--gpus", "0", "--exit", "0")
    wait_for(lambda: (d / "to_run").is_dir(), what="to_run/ to be made")
    for name in ("first.sh", "later.sh"):
        staged = script(hq.tmp / name, f"echo {name}\n")
        os.rename(staged, d / "to_run" / name)                  # dropped in whole
        wait_for(lambda: (d / "complete" / f"{name}.exitcode").exists(), timeout=15,
                 what=f"{name} to run")
        assert (d / "complete" / f"{name}.stdout").read_text() == f"{name}\n"
        assert watcher.alive(), "--exit 0: still watching with to_run/ empty"
    watcher.signal(signal.SIGTERM)
    assert watcher.wait(15) == 143
    hq.wait_no_processes(timeout=5)
    assert listing(d)["to_run"] == [] and listing(d)["running"] == []
