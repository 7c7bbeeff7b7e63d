"""--job_yielder: a Python file whose yielder() generates jobs (strings or mappings)."""
import textwrap

import pytest

from .harness import assert_no_traceback, info, job_dir, job_dirs, marker, out, run_hog, write


def yielder_file(tmp_path, body, name="sweep.py"):
    return write(tmp_path / name, textwrap.dedent(body))


def run_yielder(tmp_path, body, *extra, gpus="0", timeout=60):
    yielder_file(tmp_path, body)
    return run_hog(tmp_path, "--job_yielder", "sweep.py", "--gpus", gpus, *extra, timeout=timeout)


def line_of(path, needle):
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if needle in line:
            return n
    raise AssertionError(needle)


def test_yielded_command_strings_run_in_order_numbered_from_0(tmp_path):
    r = run_yielder(tmp_path, """
        def yielder():
            for i in range(5):
                yield f"echo item-{i}; [[ $HOG_JOB_INDEX == {i} ]] && echo index-ok"
    """, gpus="0,1")
    assert r.returncode == 0, r.stderr
    dirs = job_dirs(tmp_path)
    assert [d.name for d in dirs] == [f"job_{i}" for i in range(5)]
    for i, d in enumerate(dirs):
        assert out(d) == f"item-{i}\nindex-ok\n"
        assert marker(d) == "SUCCESS"
        assert info(d)["index"] == i


def test_mapping_items_with_cmd_and_name(tmp_path):
    r = run_yielder(tmp_path, """
        def yielder():
            yield {"cmd": "echo from-mapping $HOG_JOB_NAME", "name": "eval"}
            yield {"cmd": "echo unnamed $HOG_JOB_NAME"}
            yield "echo a string"
    """)
    assert r.returncode == 0, r.stderr
    assert out(job_dir(tmp_path, 0)) == "from-mapping eval\n"
    assert info(job_dir(tmp_path, 0))["name"] == "eval"
    assert info(job_dir(tmp_path, 0))["command"] == "echo from-mapping $HOG_JOB_NAME"
    assert out(job_dir(tmp_path, 1)) == "unnamed job_1\n"
    assert out(job_dir(tmp_path, 2)) == "a string\n"


def test_mapping_items_carry_job_options(tmp_path):
    r = run_yielder(tmp_path, """
        def yielder():
            yield {"cmd": 'echo "[$CUDA_VISIBLE_DEVICES]"', "gpus": 0}
            yield {"cmd": 'echo "[$CUDA_VISIBLE_DEVICES]"', "gpus": 2}
            yield {"cmd": "sleep 30", "timeout": "1s"}
    """, gpus="0,1")
    assert r.returncode == 1, r.stderr
    assert out(job_dir(tmp_path, 0)) == "[]\n"
    assert sorted(out(job_dir(tmp_path, 1)).strip("[]\n").split(",")) == ["0", "1"]
    assert info(job_dir(tmp_path, 2))["status"] == "timeout"


def test_yielder_can_import_modules_next_to_it(tmp_path):
    write(tmp_path / "grid.py", "VALUES = [3, 4]\n")
    r = run_yielder(tmp_path, """
        from grid import VALUES

        def yielder():
            for v in VALUES:
                yield f"echo v={v}"
    """)
    assert r.returncode == 0, r.stderr
    assert [out(d) for d in job_dirs(tmp_path)] == ["v=3\n", "v=4\n"]


def test_an_empty_yielder_runs_nothing_and_exits_0(tmp_path):
    r = run_yielder(tmp_path, """
        def yielder():
            return
            yield
    """)
    assert r.returncode == 0, r.stderr
    assert job_dirs(tmp_path) == []


@pytest.mark.timeout(60)
def test_pauses_between_items_lose_nothing_and_earlier_jobs_run_meanwhile(tmp_path):
    r = run_yielder(tmp_path, """
        import os, time

        def yielder():
            yield "echo $EPOCHREALTIME > $HOG_JOB_DIR/../ended_0; echo zero"
            for _ in range(600):        # pause until job 0 has run (it runs meanwhile)
                if os.path.exists("output/job_0/SUCCESS"):
                    break
                time.sleep(0.05)
            else:
                raise RuntimeError("job 0 did not run while the yielder paused")
            yield "echo $EPOCHREALTIME > $HOG_JOB_DIR/../started_1; echo one"
            yield "echo two"
    """, gpus="0,1", timeout=40)
    assert r.returncode == 0, r.stderr
    assert [out(d) for d in job_dirs(tmp_path)] == ["zero\n", "one\n", "two\n"]
    ended_0 = float((tmp_path / "output" / "ended_0").read_text())
    started_1 = float((tmp_path / "output" / "started_1").read_text())
    # job 0 ran while the yielder was still paused, not after it went on
    assert started_1 > ended_0


def test_yielder_that_raises_after_some_jobs(tmp_path):
    body = """
        def yielder():
            yield "echo first"
            yield "echo second"
            raise ValueError("grid exhausted badly")  # line-marker
    """
    r = run_yielder(tmp_path, body, gpus="0,1")
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert [marker(d) for d in job_dirs(tmp_path)] == ["SUCCESS", "SUCCESS"]
    assert out(job_dir(tmp_path, 1)) == "second\n"
    line = line_of(tmp_path / "sweep.py", "line-marker")
    assert f"sweep.py:{line}" in r.stderr
    assert "grid exhausted badly" in r.stderr
    assert_no_traceback(r.stdout + r.stderr)


def test_yielder_that_raises_before_its_first_item_is_an_input_error(tmp_path):
    r = run_yielder(tmp_path, """
        def yielder():
            raise RuntimeError("no config")  # line-marker
            yield "echo never"
    """)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "no config" in r.stderr
    assert f"sweep.py:{line_of(tmp_path / 'sweep.py', 'line-marker')}" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert_no_traceback(r.stderr)
    assert job_dirs(tmp_path) == []


def test_missing_yielder_file_is_a_one_line_error_exit_2(tmp_path):
    r = run_hog(tmp_path, "--job_yielder", "nope.py", "--gpus", "0")
    assert r.returncode == 2
    assert "nope.py" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert_no_traceback(r.stderr)


def test_file_without_a_yielder_function_is_a_one_line_error_exit_2(tmp_path):
    r = run_yielder(tmp_path, """
        def generate():
            yield "echo hi"
    """)
    assert r.returncode == 2
    assert "sweep.py" in r.stderr and "yielder" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert_no_traceback(r.stderr)
    assert job_dirs(tmp_path) == []


def test_syntax_error_is_a_one_line_error_naming_file_and_line(tmp_path):
    r = run_yielder(tmp_path, """
        def yielder():
            yield "echo fine"

        def broken(:
            pass
    """)
    assert r.returncode == 2
    assert f"sweep.py:{line_of(tmp_path / 'sweep.py', 'def broken')}" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert_no_traceback(r.stderr)
    assert job_dirs(tmp_path) == []


def test_exception_while_importing_the_file_is_a_one_line_error(tmp_path):
    r = run_yielder(tmp_path, """
        import json
        CONFIG = json.loads("{not json")  # line-marker

        def yielder():
            yield "echo hi"
    """)
    assert r.returncode == 2
    assert f"sweep.py:{line_of(tmp_path / 'sweep.py', 'line-marker')}" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert_no_traceback(r.stderr)


def test_an_item_of_the_wrong_type_is_an_error_naming_the_file(tmp_path):
    r = run_yielder(tmp_path, """
        def yielder():
            yield 42
    """)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "sweep.py" in r.stderr
    assert "int" in r.stderr
    assert_no_traceback(r.stderr)
    assert job_dirs(tmp_path) == []


def test_a_mapping_without_cmd_is_an_error_naming_the_file(tmp_path):
    r = run_yielder(tmp_path, """
        def yielder():
            yield {"name": "lost", "command": "echo typo in the key"}
    """)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "sweep.py" in r.stderr and "cmd" in r.stderr
    assert_no_traceback(r.stderr)


def test_a_bad_item_after_good_ones_stops_the_sweep_with_an_error(tmp_path):
    r = run_yielder(tmp_path, """
        def yielder():
            yield "echo good"
            yield ["echo", "a list"]
            yield "echo never"
    """)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "sweep.py" in r.stderr and "list" in r.stderr
    assert marker(job_dir(tmp_path, 0)) == "SUCCESS"
    assert all(out(d) != "never\n" for d in job_dirs(tmp_path))
    assert_no_traceback(r.stderr)


def test_a_mapping_with_an_unknown_option_is_an_error(tmp_path):
    r = run_yielder(tmp_path, """
        def yielder():
            yield {"cmd": "echo hi", "gpu": "x"}
    """)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "sweep.py" in r.stderr and "gpu" in r.stderr
    assert_no_traceback(r.stderr)
