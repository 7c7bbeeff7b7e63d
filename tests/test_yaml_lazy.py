"""YAML sweeps read fast: with PyYAML's C loader where PyYAML has it (the pure-Python
loader gives the same jobs and errors), and grids expanded point by point, so the first
job of a million-point grid comes out at once and memory does not grow with the grid."""
import ast
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from hog.errors import InputError
from hog.sources.yaml import loader_class, read_yaml, yaml_count, yaml_jobs

from .harness import start_hog, wait_for

ROOT = Path(__file__).resolve().parent.parent
GRID = "\n".join([
    "jobs:",
    "  - cmd: echo prep",
    "    name: prep",
    "sweeps:",
    "  - cmd: 'true {a} {b} {c}'",
    "    after: [prep]",
    "    grid: {a: [%s], b: [%s], c: [%s]}" % ((", ".join(map(str, range(100))),) * 3),
    ""])


def outcome(path: Path, pure: bool):
    """The jobs read from ``path`` (with every field), or the error's text."""
    try:
        return [tuple(vars(j).items()) for j in read_yaml(str(path), pure=pure)]
    except InputError as e:
        return str(e)


def yaml_texts():
    """Every YAML file in the repository and every YAML text of the YAML tests."""
    for path in sorted(ROOT.glob("jobs/*.y*ml")):
        yield path.name, path.read_text()
    for module in ("test_yaml_source.py", "test_bad_input.py"):
        tree = ast.parse((ROOT / "tests" / module).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in (
                    "yml", "yaml_error") and len(node.args) >= 2 \
                    and isinstance(node.args[1], ast.Constant) \
                    and isinstance(node.args[1].value, str):
                yield f"{module}:{node.lineno}", textwrap.dedent(node.args[1].value).lstrip("\n")


@pytest.mark.skipif(not hasattr(yaml, "CSafeLoader"), reason="PyYAML without libyaml")
def test_the_c_loader_is_used_and_gives_the_same_jobs_and_errors_as_the_pure_one(tmp_path):
    assert loader_class() is yaml.CSafeLoader
    assert loader_class(pure=True) is yaml.SafeLoader
    texts = list(yaml_texts())
    assert len(texts) > 30
    for label, text in texts:
        path = tmp_path / "jobs.yaml"
        path.write_text(text)
        assert outcome(path, pure=False) == outcome(path, pure=True), label


def test_a_grid_of_a_million_jobs_gives_its_first_job_at_once_and_counts_without_expanding(
        tmp_path):
    path = tmp_path / "grid.yaml"
    path.write_text(GRID)
    t = time.perf_counter()
    jobs = yaml_jobs(str(path))
    first, second = next(jobs), next(jobs)
    assert time.perf_counter() - t < 0.5
    assert (first.name, first.command) == ("prep", "echo prep")
    assert (second.index, second.name, second.command, second.after) == (
        1, "sweep0-a=0-b=0-c=0", "true 0 0 0", ("prep",))
    assert second.params == (("a", 0), ("b", 0), ("c", 0))
    t = time.perf_counter()
    assert yaml_count(str(path)) == 1 + 100 ** 3
    assert time.perf_counter() - t < 0.5


PEAK = """
import resource, sys
from hog.sources.yaml import yaml_jobs
jobs = yaml_jobs(sys.argv[1])
for _ in range(int(sys.argv[2])):
    last = next(jobs)
print(last.index, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def peak_rss_kb(path: Path, jobs: int):
    r = subprocess.run([sys.executable, "-c", PEAK, str(path), str(jobs)], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    index, peak = map(int, r.stdout.split())
    assert index == jobs - 1
    return peak


def test_memory_does_not_grow_with_the_grid_or_with_the_jobs_read(tmp_path):
    small, big = tmp_path / "small.yaml", tmp_path / "big.yaml"
    small.write_text(GRID.replace("c: [%s]" % ", ".join(map(str, range(100))), "c: [0]")
                     .replace("b: [%s]" % ", ".join(map(str, range(100))), "b: [0]"))
    big.write_text(GRID)
    assert yaml_count(str(small)) == 101
    base = peak_rss_kb(small, 101)
    assert peak_rss_kb(big, 101) - base < 8 * 1024
    assert peak_rss_kb(big, 40_000) - base < 8 * 1024


def test_a_dependency_on_a_grid_point_and_a_cycle_through_a_grid_are_checked_before_any_job(
        tmp_path):
    path = tmp_path / "jobs.yaml"
    path.write_text(textwrap.dedent("""
        jobs:
          - cmd: echo report
            name: report
            after: [train-lr=2]
          - sweep:
              cmd: echo {lr}
              name: train
              grid: {lr: [1, 2, 3]}
        """))
    assert [j.name for j in yaml_jobs(str(path))] == [
        "report", "train-lr=1", "train-lr=2", "train-lr=3"]
    path.write_text(path.read_text() + "      after: [report]\n")
    with pytest.raises(InputError, match="dependency cycle: report -> train-lr=2 -> report"):
        yaml_jobs(str(path))
    path.write_text(path.read_text().replace("[train-lr=2]", "[train-lr=4]"))
    with pytest.raises(InputError, match="job report is after 'train-lr=4', but no job"):
        yaml_jobs(str(path))


@pytest.mark.timeout(60)
def test_hog_starts_the_first_job_of_a_million_job_grid_at_once(tmp_path):
    path = tmp_path / "grid.yaml"
    path.write_text(GRID)
    out = tmp_path / "output"
    hog = start_hog(tmp_path, "--job_file", path, "--gpus", "0", "--display", "quiet")
    t = time.monotonic()
    wait_for(lambda: (out / "job_1" / "INFO").exists(), timeout=20)
    assert time.monotonic() - t < 5           # was 20 s: the grid expanded first
    hog.signal(signal.SIGINT)
    hog.wait_output("Ctrl-C again")
    hog.signal(signal.SIGINT)
    hog.wait(30)
