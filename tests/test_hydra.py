"""The Hydra recipe (README "Hydra"): a multirun-style sweep as a hog job file whose jobs
each write Hydra's output into their own job folder (``hydra.run.dir=$HOG_JOB_DIR/hydra``),
so that jobs started in the same second no longer share one ``outputs/DATE/TIME/``.

A tiny Hydra app is written by the test: it prints its config and writes a file into
Hydra's output folder; Hydra itself records each run's overrides there
(``.hydra/overrides.yaml``)."""
import sys

import pytest
import yaml

from .harness import job_dir, job_dirs, job_file, out, run_hog, write

pytest.importorskip("hydra", reason="hydra-core is not installed: pip install -e '.[test]'")

APP = '''\
import os

import hydra
from hydra.core.hydra_config import HydraConfig


@hydra.main(version_base=None, config_path="conf", config_name="config")
def main(cfg):
    where = HydraConfig.get().runtime.output_dir
    with open(os.path.join(where, "result.txt"), "w") as f:
        f.write(f"lr={cfg.lr} seed={cfg.seed}\\n")
    print(f"lr={cfg.lr} seed={cfg.seed} in {where}")


if __name__ == "__main__":
    main()
'''

CONFIG = "lr: 0.1\nseed: 0\n"
# the same recipe in the app's own config: no override on any command line
CONFIG_WITH_RUN_DIR = CONFIG + """\
hydra:
  run:
    dir: ${oc.env:HOG_JOB_DIR,outputs}/hydra
"""

OVERRIDES = [["lr=0.1", "seed=1"], ["lr=0.1", "seed=2"], ["lr=0.01", "seed=1"],
             ["lr=0.01", "seed=2"]]


def hydra_app(folder, config=CONFIG):
    write(folder / "app.py", APP)
    (folder / "conf").mkdir()
    write(folder / "conf" / "config.yaml", config)


def assert_each_job_folder_holds_its_own_hydra_run(tmp_path, overrides):
    dirs = job_dirs(tmp_path)
    assert len(dirs) == len(overrides)
    seen = {}
    for folder in dirs:
        run_dir = folder / "hydra"
        job_overrides = yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text())
        got = [o for o in job_overrides if not o.startswith("hydra.")]
        lr, seed = (o.split("=", 1)[1] for o in got)
        assert (run_dir / "result.txt").read_text() == f"lr={lr} seed={seed}\n"
        assert yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text()) == \
            {"lr": float(lr), "seed": int(seed)}
        assert f"in {run_dir}" in out(folder)
        seen[folder.name] = got
    assert sorted(seen.values()) == sorted(overrides)
    assert not (tmp_path / "outputs").exists()          # Hydra's shared default is unused


def test_a_hydra_sweep_as_a_job_file_writes_each_run_into_its_own_job_folder(tmp_path):
    hydra_app(tmp_path)
    job_file(tmp_path, *[f"{sys.executable} app.py {' '.join(o)} "
                         f"hydra.run.dir=$HOG_JOB_DIR/hydra" for o in OVERRIDES])
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0,0", "--display", "plain")
    assert r.returncode == 0, r.stdout + r.stderr
    assert_each_job_folder_holds_its_own_hydra_run(tmp_path, OVERRIDES)
    assert "lr=0.01 seed=2" in out(job_dir(tmp_path, 3))


def test_a_yaml_grid_with_the_run_dir_in_the_apps_config_does_the_same(tmp_path):
    hydra_app(tmp_path, CONFIG_WITH_RUN_DIR)
    write(tmp_path / "sweep.yaml", yaml.safe_dump({"jobs": [{"sweep": {
        "cmd": f"{sys.executable} app.py lr={{lr}} seed={{seed}}",
        "grid": {"lr": [0.1, 0.01], "seed": [1, 2]}}}]}))
    r = run_hog(tmp_path, "--job_file", "sweep.yaml", "--gpus", "0,0", "--display", "plain")
    assert r.returncode == 0, r.stdout + r.stderr
    assert_each_job_folder_holds_its_own_hydra_run(tmp_path, OVERRIDES)
