"""What each command loads before it acts (``python -X importtime``): the verbs that
only touch the store (add, status, stop, kill) load the store and what they print
with, never the engine, the backends, multiprocess, rich or yaml; ``hog --version``
loads nothing of hog's but the package."""
import subprocess
import sys
from typing import Set

import pytest

from tests.harness import hog_env, job_file

HEAVY = ("multiprocess", "dill", "rich", "yaml", "hog.engine", "hog.backends", "hog.views.display",
         "hog.views.dashboard", "hog.config", "hog.gpus", "hog.cli.run", "hog.api")


def imported(cwd, *args) -> Set[str]:
    """The modules ``hog ARGS`` imported, by name."""
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "hog", *map(str, args)],
                       cwd=str(cwd), env=hog_env(), stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=60)
    names = {line.rsplit("|", 1)[1].strip() for line in r.stderr.splitlines()
             if line.startswith("import time:") and "|" in line}
    assert names, r.stderr
    return names


def heavy_in(names: Set[str]) -> Set[str]:
    return {n for n in names if any(n == h or n.startswith(h + ".") for h in HEAVY)}


@pytest.mark.parametrize("verb", [
    ["add", "out", "--", "true"],
    ["add", "out", "--job_file", "jobs.txt"],
    ["status", "out"],
    ["status", "out", "--json"],
    ["stop", "out"],
    ["kill", "out", "0"],
])
def test_verbs_on_the_store_load_only_the_store(tmp_path, verb):
    job_file(tmp_path, "true", "true")
    subprocess.run([sys.executable, "-m", "hog", "add", "out", "--", "true"], cwd=str(tmp_path),
                   env=hog_env(), check=True, capture_output=True, timeout=60)
    names = imported(tmp_path, *verb)
    assert "hog.state.store" in names
    assert heavy_in(names) == set()


def test_hog_version_loads_only_the_command_line(tmp_path):
    names = imported(tmp_path, "--version")
    assert {n for n in names if n.startswith("hog.")} <= {"hog.cli", "hog.errors",
                                                          "hog.state", "hog.state.diskguard"}
    assert heavy_in(names) == set()


def test_a_run_loads_the_engine_and_multiprocess(tmp_path):
    """multiprocess stays what runs the slots: a sweep loads it (and no dashboard when
    its display is quiet)."""
    jf = job_file(tmp_path, "true")
    names = imported(tmp_path, "--job_file", jf, "--gpus", "0", "--output_dir", "out",
                     "--display", "quiet")
    assert {"multiprocess", "hog.engine.runner"} <= names


def test_a_run_loads_multiprocess_without_dill_which_stays_importable(tmp_path):
    """No process of hog's pickles with dill (hog.engine.context): the hog command has
    multiprocess take the standard pickle, and a job of its sweep still runs. dill is
    found again once multiprocess has loaded (a yielder may import it)."""
    jf = job_file(tmp_path, "true")
    names = imported(tmp_path, "--job_file", jf, "--gpus", "0", "--output_dir", "out",
                     "--display", "quiet")
    assert {"multiprocess", "multiprocess.reduction", "hog.engine.runner"} <= names
    assert {n for n in names if n.startswith("dill.")} == set()  # (its refused import
    #                                                   is listed, as "dill", loading nothing)
    assert (tmp_path / "out" / "job_0" / "SUCCESS").exists()
    probe = ("import sys, pickle; from hog.engine.context import standard_pickling; "
             "standard_pickling(); import multiprocess.reduction as r; "
             "assert r.ForkingPickler.__mro__[1] is pickle.Pickler, r.ForkingPickler.__mro__; "
             "assert 'dill' not in sys.modules; import dill; print(dill.__name__)")
    r = subprocess.run([sys.executable, "-c", probe], cwd=str(tmp_path), env=hog_env(),
                       capture_output=True, text=True, timeout=60)
    assert (r.returncode, r.stdout.strip()) == (0, "dill"), r.stderr


def test_a_program_that_loaded_dill_keeps_multiprocess_pickling_with_it(tmp_path):
    """standard_pickling changes nothing once dill or multiprocess is loaded (an
    embedding program's, as with hog.run)."""
    probe = ("import dill, pickle; from hog.engine.context import standard_pickling; "
             "standard_pickling(); import multiprocess.reduction as r; "
             "assert r.ForkingPickler.__mro__[1] is not pickle.Pickler")
    r = subprocess.run([sys.executable, "-c", probe], cwd=str(tmp_path), env=hog_env(),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_a_whole_sweep_never_loads_openssl_for_its_digests(tmp_path):
    """The jobs' digests and the results files' checkpoints hash with Python's own
    modules: ``hashlib`` loads OpenSSL first (8 ms of the run)."""
    jf = job_file(tmp_path, "true", "true")
    names = imported(tmp_path, "--job_file", jf, "--gpus", "0", "--output_dir", "out",
                     "--display", "quiet")
    assert "hog.state.resultfiles" in names     # (the results files were written)
    assert not {"hashlib", "_hashlib"} & names


# what `hog status` leaves out, each worth a millisecond or more of its start (the
# messages' classes, OpenSSL, the process and network modules, argparse's shutil)
NOT_FOR_STATUS = ("hog.messages", "hog.boot", "hashlib", "subprocess", "socket", "shutil",
                  "difflib")


def test_hog_status_loads_neither_the_messages_nor_the_tools_it_does_not_use(tmp_path):
    subprocess.run([sys.executable, "-m", "hog", "add", "out", "--", "true"], cwd=str(tmp_path),
                   env=hog_env(), check=True, capture_output=True, timeout=60)
    names = imported(tmp_path, "status", "out") - interpreter_alone(tmp_path)
    assert "hog.state.store" in names
    assert {n for n in NOT_FOR_STATUS if n in names} == set()


def interpreter_alone(cwd) -> Set[str]:
    """What the interpreter loads before any of hog's code (a machine's site hooks)."""
    r = subprocess.run([sys.executable, "-X", "importtime", "-c", "pass"], cwd=str(cwd),
                       env=hog_env(), capture_output=True, text=True, timeout=60)
    return {line.rsplit("|", 1)[1].strip() for line in r.stderr.splitlines()
            if line.startswith("import time:") and "|" in line}


def test_a_yielder_that_sends_a_lambda_to_a_multiprocess_pool_runs_under_the_hog_command(
        tmp_path):
    """A yielder is the user's Python, run in hog's producer: multiprocess keeps dill
    there, so what only dill pickles still goes to a pool (hog.engine.context)."""
    (tmp_path / "sweep.py").write_text(
        "def yielder():\n"
        "    from multiprocess import Pool\n"
        "    with Pool(2) as pool:\n"
        "        for x in pool.map(lambda v: v * 2, range(3)):\n"
        "            yield f'echo {x}'\n")
    r = subprocess.run([sys.executable, "-m", "hog", "--job_yielder", "sweep.py", "--gpus", "0",
                        "--output_dir", "out", "--display", "quiet"], cwd=str(tmp_path),
                       env=hog_env(), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    outs = sorted((tmp_path / "out" / f"job_{i}" / f"job_{i}.OUT").read_text().strip()
                  for i in range(3))
    assert outs == ["0", "2", "4"]
