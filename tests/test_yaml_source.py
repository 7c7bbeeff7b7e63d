"""YAML job files: defaults, string and mapping jobs, sweeps over parameter grids,
dependencies, and input errors that name the file, the line and the entry.

Most tests read the file with ``hog.yamlsource.yaml_jobs`` (pure, no processes); the
last ones run a YAML sweep end to end with hog.
"""
import os
import textwrap
from pathlib import Path

import pytest

from hog.errors import InputError
from hog.sources.yaml import yaml_jobs

from .harness import err, info, job_dir, job_dirs, marker, out, run_hog

G = 2 ** 30



def yml(tmp_path, text, name="jobs.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def jobs_of(path):
    return list(yaml_jobs(str(path)))


def input_error(path) -> str:
    with pytest.raises(InputError) as e:
        jobs_of(path)
    return str(e.value)


# --------------------------------------------------------- jobs and defaults
def test_string_and_mapping_jobs_are_read_in_order(tmp_path):
    p = yml(tmp_path, """
        jobs:
          - echo one
          - cmd: echo two
            name: second
            gpus: 2
            timeout: 30m
            retries: 2
            priority: 3
            env: {FOO: bar}
            cwd: /tmp
            gpu_ids: [0, 1]
            resources: {memory: 20G, lic: 1}
        """)
    one, two = jobs_of(p)
    assert (one.index, one.command, one.name, one.gpus) == (0, "echo one", None, 1)
    assert (two.index, two.command, two.name, two.gpus) == (1, "echo two", "second", 2)
    assert two.timeout == 1800 and two.retries == 2 and two.priority == 3
    assert two.env == (("FOO", "bar"),)
    assert two.cwd == "/tmp"
    assert two.gpu_ids == ("0", "1")
    assert dict(two.resources) == {"memory": 20 * G, "lic": 1.0}


def test_defaults_apply_to_every_job_and_a_job_may_override_them(tmp_path):
    p = yml(tmp_path, """
        defaults: {gpus: 2, timeout: 2h, retries: 1, resources: {lic: 1}}
        jobs:
          - echo plain
          - cmd: echo own
            retries: 0
            gpus: 0
          - sweep:
              cmd: echo {x}
              grid: {x: [1, 2]}
        """)
    plain, own, s1, s2 = jobs_of(p)
    for j in (plain, s1, s2):
        assert (j.gpus, j.timeout, j.retries, dict(j.resources)) == (2, 7200, 1, {"lic": 1})
    assert (own.gpus, own.timeout, own.retries) == (0, 7200, 0)


def test_a_top_level_list_is_a_list_of_jobs(tmp_path):
    p = yml(tmp_path, """
        - echo a
        - cmd: echo b
        """)
    assert [j.command for j in jobs_of(p)] == ["echo a", "echo b"]


def test_an_empty_file_has_no_jobs(tmp_path):
    assert jobs_of(yml(tmp_path, "\n")) == []


def test_where_names_the_file_the_line_and_the_entry(tmp_path):
    p = yml(tmp_path, """
        jobs:
          - echo a
          - cmd: echo b
        """)
    a, b = jobs_of(p)
    assert a.where == f"{p}:2 (jobs[0])"
    assert b.where == f"{p}:3 (jobs[1])"


# ---------------------------------------------------------------- sweeps
def test_a_sweep_expands_the_cartesian_product_with_readable_names(tmp_path):
    p = yml(tmp_path, """
        jobs:
          - sweep:
              cmd: python train.py --lr {lr} --seed {seed}
              name: train
              grid: {lr: [0.1, 0.01], seed: [1, 2, 3]}
        """)
    jobs = jobs_of(p)
    assert [j.name for j in jobs] == [
        "train-lr=0.1-seed=1", "train-lr=0.1-seed=2", "train-lr=0.1-seed=3",
        "train-lr=0.01-seed=1", "train-lr=0.01-seed=2", "train-lr=0.01-seed=3"]
    assert jobs[4].command == "python train.py --lr 0.01 --seed 2"
    assert [j.index for j in jobs] == list(range(6))


def test_a_sweep_name_template_takes_the_grid_values(tmp_path):
    p = yml(tmp_path, """
        jobs:
          - sweep:
              cmd: run --model {model} --lr {lr}
              name: "{model}_lr{lr}"
              grid: {model: [small, big], lr: [1, 2]}
        """)
    assert [j.name for j in jobs_of(p)] == ["small_lr1", "small_lr2", "big_lr1", "big_lr2"]


def test_a_sweep_without_a_name_is_named_after_its_entry(tmp_path):
    p = yml(tmp_path, """
        jobs:
          - echo first
          - sweep:
              cmd: echo {a}
              grid: {a: [x, y]}
        """)
    assert [j.name for j in jobs_of(p)] == [None, "sweep1-a=x", "sweep1-a=y"]


def test_sweep_options_apply_to_each_of_its_jobs(tmp_path):
    p = yml(tmp_path, """
        jobs:
          - sweep:
              cmd: echo {a}
              grid: {a: [1, 2]}
              gpus: 2
              timeout: 90s
              resources: {memory: 10G}
        """)
    for j in jobs_of(p):
        assert (j.gpus, j.timeout, dict(j.resources)) == (2, 90, {"memory": 10 * G})


def test_a_top_level_sweeps_list_is_accepted(tmp_path):
    p = yml(tmp_path, """
        jobs:
          - echo before
        sweeps:
          - cmd: echo {n}
            name: s
            grid: {n: [1, 2]}
        """)
    assert [(j.index, j.name, j.command) for j in jobs_of(p)] == [
        (0, None, "echo before"), (1, "s-n=1", "echo 1"), (2, "s-n=2", "echo 2")]


def test_doubled_braces_and_shell_variables_stay_for_bash(tmp_path):
    p = yml(tmp_path, """
        jobs:
          - sweep:
              cmd: 'echo {lr} {{VAR}} ${HOME} {lr}{lr} {} { lr } "${PATH}"'
              name: t
              grid: {lr: [5]}
        """)
    [j] = jobs_of(p)
    assert j.command == 'echo 5 {VAR} ${HOME} 55 {} { lr } "${PATH}"'


def test_a_mapping_job_outside_a_sweep_keeps_its_braces(tmp_path):
    p = yml(tmp_path, """
        jobs:
          - cmd: 'echo {lr} ${HOME}'
        """)
    assert jobs_of(p)[0].command == "echo {lr} ${HOME}"


@pytest.mark.parametrize("sweep, words", [
    ("cmd: echo {a}", "grid"),
    ("cmd: echo {a}\n      grid: {a: []}", "non-empty list"),
    ("cmd: echo {a}\n      grid: {a: 3}", "non-empty list"),
    ("grid: {a: [1]}", "cmd"),
])
def test_a_malformed_sweep_is_an_input_error_naming_its_entry(tmp_path, sweep, words):
    p = yml(tmp_path, "jobs:\n  - echo a\n  - sweep:\n      " + sweep + "\n")
    message = input_error(p)
    assert f"{p}:3 (jobs[1])" in message
    assert words in message


# ------------------------------------------------------------ dependencies
def test_dependencies_may_point_forward_and_across_the_file(tmp_path):
    p = yml(tmp_path, """
        jobs:
          - cmd: echo report
            after: [train, evaluate]
          - cmd: echo train
            name: train
            after: prep
          - {cmd: echo prep, name: prep}
          - {cmd: echo eval, name: evaluate, after: "train"}
        """)
    report, train, prep, evaluate = jobs_of(p)
    assert report.after == ("train", "evaluate")
    assert train.after == ("prep",)
    assert evaluate.after == ("train",)


def test_a_sweep_may_depend_on_a_job(tmp_path):
    p = yml(tmp_path, """
        jobs:
          - sweep:
              cmd: echo {a}
              grid: {a: [1, 2]}
              after: [prep]
          - {cmd: echo prep, name: prep}
        """)
    assert [j.after for j in jobs_of(p)] == [("prep",), ("prep",), ()]


def test_a_dependency_cycle_is_an_input_error_naming_the_jobs(tmp_path):
    p = yml(tmp_path, """
        jobs:
          - {cmd: echo a, name: alpha, after: [gamma]}
          - {cmd: echo b, name: beta, after: [alpha]}
          - {cmd: echo c, name: gamma, after: [beta]}
          - {cmd: echo d, name: delta}
        """)
    message = input_error(p)
    assert "cycle" in message
    for name in ("alpha", "beta", "gamma"):
        assert name in message
    assert "delta" not in message
    assert str(p) in message


def test_a_job_after_itself_is_a_cycle(tmp_path):
    p = yml(tmp_path, """
        jobs:
          - {cmd: echo a, name: self, after: [self]}
        """)
    message = input_error(p)
    assert "cycle" in message and "self" in message


def test_after_naming_no_job_is_an_input_error_naming_the_entry(tmp_path):
    p = yml(tmp_path, """
        jobs:
          - {cmd: echo a, name: a}
          - {cmd: echo b, name: b, after: [nope]}
        """)
    message = input_error(p)
    assert f"{p}:3 (jobs[1])" in message and "'nope'" in message


# ------------------------------------------------------------ input errors
def test_an_unknown_option_is_an_input_error_naming_file_line_and_entry(tmp_path):
    p = yml(tmp_path, """
        jobs:
          - echo fine
          - cmd: echo typo
            gpu: 2
        """)
    message = input_error(p)
    assert f"{p}:3 (jobs[1])" in message
    assert "'gpu'" in message and "unknown" in message


def test_an_unknown_option_in_a_sweep_names_the_sweep_entry(tmp_path):
    p = yml(tmp_path, """
        jobs:
          - echo a
          - echo b
          - sweep:
              cmd: echo {x}
              grid: {x: [1]}
              retry: 3
        """)
    message = input_error(p)
    assert f"{p}:4 (jobs[2])" in message and "'retry'" in message


def test_an_unknown_option_in_defaults_is_an_input_error(tmp_path):
    p = yml(tmp_path, """
        defaults: {gpu: 2}
        jobs: [echo a]
        """)
    message = input_error(p)
    assert str(p) in message and "defaults" in message and "gpu" in message


def test_an_unknown_top_level_key_is_an_input_error(tmp_path):
    p = yml(tmp_path, """
        job:
          - echo a
        """)
    message = input_error(p)
    assert "job" in message and "jobs" in message


@pytest.mark.parametrize("entry, words", [
    ("{cmd: echo a, gpus: two}", "'gpus'"),
    ("{cmd: echo a, timeout: soon}", "'timeout'"),
    ("{cmd: echo a, retries: -1}", "'retries'"),
    ("{cmd: echo a, resources: {memory: lots}}", "'memory'"),
    ("{name: nocmd}", "cmd"),
    ("{cmd: '  '}", "cmd"),
    ("42", "int"),
])
def test_bad_values_are_input_errors_naming_the_entry(tmp_path, entry, words):
    p = yml(tmp_path, f"jobs:\n  - echo ok\n  - {entry}\n")
    message = input_error(p)
    assert f"{p}:3 (jobs[1])" in message
    assert words in message


def test_invalid_yaml_is_an_input_error_naming_the_line(tmp_path):
    p = yml(tmp_path, """
        jobs:
          - echo a
          - cmd: echo b
            name: x: y
          - echo c
        """)
    message = input_error(p)
    assert "not valid YAML" in message
    assert f"{p}:4" in message


def test_a_tab_indented_file_names_the_line_of_the_tab(tmp_path):
    p = tmp_path / "jobs.yaml"
    p.write_text("jobs:\n  - echo a\n\t- echo b\n")
    message = input_error(p)
    assert "not valid YAML" in message and f"{p}:3" in message


# ------------------------------------------------------------- end to end
SWEEP = """
    defaults: {gpus: 1}
    jobs:
      - {cmd: 'echo prep; echo prep-ran > prep.flag', name: prep}
      - sweep:
          cmd: 'test -e prep.flag && echo "lr={lr} seed={seed} gpus=$CUDA_VISIBLE_DEVICES name=$HOG_JOB_NAME home=${HOME} keep={{other}}"'
          name: train
          grid: {lr: [0.1, 0.01], seed: [1, 2]}
          after: [prep]
      - {cmd: 'echo "[$CUDA_VISIBLE_DEVICES] $FOO"', name: cpu, gpus: 0, env: {FOO: bar}}
      - {cmd: 'echo "$CUDA_VISIBLE_DEVICES"', name: pair, gpus: 2}
    """  # noqa: E501 - one YAML line


def test_a_yaml_sweep_runs_end_to_end_with_one_folder_per_point(tmp_path):
    yml(tmp_path, SWEEP, name="sweep.yaml")
    r = run_hog(tmp_path, "--job_file", "sweep.yaml", "--gpus", "0,1", timeout=60)
    assert r.returncode == 0, r.stderr
    folders = job_dirs(tmp_path)
    assert [f.name for f in folders] == [f"job_{i}" for i in range(7)]
    names = [info(f)["name"] for f in folders]
    assert names == ["prep", "train-lr=0.1-seed=1", "train-lr=0.1-seed=2",
                     "train-lr=0.01-seed=1", "train-lr=0.01-seed=2", "cpu", "pair"]
    for f in folders:
        assert marker(f) == "SUCCESS", err(f)
    home = os.environ["HOME"]
    for i, (lr, seed) in enumerate([("0.1", 1), ("0.1", 2), ("0.01", 1), ("0.01", 2)], 1):
        d = job_dir(tmp_path, i)
        gpu = info(d)["gpus"]
        assert len(gpu) == 1 and gpu[0] in ("0", "1")
        assert out(d).strip() == (f"lr={lr} seed={seed} gpus={gpu[0]} name={names[i]} "
                                  f"home={home} keep={{other}}")
    assert out(job_dir(tmp_path, 5)).strip() == "[] bar"
    assert sorted(out(job_dir(tmp_path, 6)).strip().split(",")) == ["0", "1"]


def test_a_yaml_job_file_with_an_unknown_option_exits_2_naming_file_line_and_entry(tmp_path):
    yml(tmp_path, """
        jobs:
          - echo a
          - {cmd: echo b, gpu: 2}
        """, name="sweep.yaml")
    r = run_hog(tmp_path, "--job_file", "sweep.yaml", "--gpus", "0")
    assert r.returncode == 2
    assert "sweep.yaml:3 (jobs[1])" in r.stderr
    assert "'gpu'" in r.stderr
    assert not job_dir(tmp_path, 0).exists()


def test_a_yaml_cycle_exits_2_before_any_job_runs(tmp_path):
    yml(tmp_path, """
        jobs:
          - {cmd: touch ran, name: free}
          - {cmd: echo a, name: a, after: [b]}
          - {cmd: echo b, name: b, after: [a]}
        """, name="jobs.yml")
    r = run_hog(tmp_path, "--job_file", "jobs.yml", "--gpus", "0")
    assert r.returncode == 2
    assert "dependency cycle" in r.stderr
    assert "a -> b -> a" in r.stderr or "b -> a -> b" in r.stderr
    assert not (tmp_path / "ran").exists()


def test_a_yaml_failed_dependency_skips_the_sweep(tmp_path):
    yml(tmp_path, """
        jobs:
          - {cmd: exit 1, name: prep}
          - sweep:
              cmd: echo {a}
              name: t
              grid: {a: [1, 2]}
              after: [prep]
        """)
    r = run_hog(tmp_path, "--job_file", "jobs.yaml", "--gpus", "0", timeout=30)
    assert r.returncode == 1
    for i in (1, 2):
        assert info(job_dir(tmp_path, i))["status"] == "skipped"
        assert "its dependency prep ended failed" in err(job_dir(tmp_path, i))
