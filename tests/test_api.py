"""The Python API: ``hog.run`` runs a sweep through the real runner (producer,
store, slot processes, job folders), ``hog.results`` reads one, ``@hog.sweep``
turns a function that yields jobs into one that runs them. Each test runs a
Python script in its own interpreter, as a user would."""
import json
import subprocess
import sys
import textwrap

from .harness import (
    CHECKOUT,
    assert_no_traceback,
    hog_env,
    info,
    job_dir,
    job_dirs,
    job_file,
    marker,
    out,
    run_hog,
)


def python(tmp_path, code: str, timeout: float = 60) -> subprocess.CompletedProcess:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(code))
    return subprocess.run([sys.executable, str(script)], cwd=str(tmp_path), env=hog_env(),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout)


def last_json(r: subprocess.CompletedProcess):
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_run_takes_strings_and_mappings_and_writes_the_usual_job_folders(tmp_path):
    r = python(tmp_path, """
        import json, hog
        result = hog.run(["echo plain", {"cmd": "echo $CUDA_VISIBLE_DEVICES; exit 3",
                                         "name": "bee", "gpus": 2}],
                         gpus="4,7", output_dir="out", display="quiet")
        print(json.dumps({"exit_code": result.exit_code, "ok": result.ok,
                          "jobs": [[j.index, j.name, j.status, j.exit_code, list(j.gpus),
                                    j.out()] for j in result],
                          "failed": [j.name for j in result.failed]}))
    """)
    got = last_json(r)
    assert got["exit_code"] == 1 and got["ok"] is False
    assert got["jobs"] == [[0, "job_0", "succeeded", 0, ["4"], "plain\n"],
                           [1, "bee", "failed", 3, ["4", "7"], "4,7\n"]]
    assert got["failed"] == ["bee"]
    assert [marker(d) for d in job_dirs(tmp_path, "out")] == ["SUCCESS", "FAILURE"]
    assert info(job_dir(tmp_path, 1, "out"))["name"] == "bee"
    assert (tmp_path / "out" / ".hog" / "hog.sqlite").exists()


def test_a_generator_is_read_lazily_by_the_producer_and_streams(tmp_path):
    r = python(tmp_path, """
        import json, os, hog
        def jobs():
            for i in range(3):
                # the producer process reads the generator, not the caller
                yield f"echo {i} from $PPID; echo {os.getpid()} > gen{i}.pid"
        result = hog.run(jobs(), gpus=[0], output_dir="out", quiet=True)
        print(json.dumps([result.exit_code, os.getpid(), [j.status for j in result]]))
    """)
    code, caller, statuses = last_json(r)
    assert code == 0 and statuses == ["succeeded"] * 3
    producer = {int((tmp_path / f"gen{i}.pid").read_text()) for i in range(3)}
    assert len(producer) == 1 and caller not in producer


def test_results_reads_a_sweep_made_on_the_command_line_as_frozen_records(tmp_path):
    job_file(tmp_path, "echo out-text; echo err-text >&2", "exit 9  # hog: name=nine")
    assert run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0").returncode == 1
    r = python(tmp_path, """
        import dataclasses, json, hog
        res = hog.results("output")
        first = res[0]
        try:
            first.status = "x"
            frozen = False
        except dataclasses.FrozenInstanceError:
            frozen = True
        recs = res.to_records()
        print(json.dumps({"n": len(res), "frozen": frozen, "out": first.out(),
                          "err": first.err(), "nine": res.job("nine").exit_code,
                          "by_index": res.job(1).name, "keys": sorted(recs[0]),
                          "types": [type(recs[1][k]).__name__ for k in ("exit_code",
                                    "duration_s", "started", "gpus")],
                          "folder": first.folder}))
    """)
    got = last_json(r)
    assert got["n"] == 2 and got["frozen"] is True
    assert (got["out"], got["err"]) == ("out-text\n", "err-text\n")
    assert got["nine"] == 9 and got["by_index"] == "nine"
    assert {"index", "name", "command", "status", "exit_code", "started", "ended",
            "duration_s", "gpus", "folder", "out_path", "err_path"} <= set(got["keys"])
    assert got["types"] == ["int", "float", "datetime", "tuple"]
    assert got["folder"] == str(job_dir(tmp_path, 0))


def test_sweep_decorator_runs_what_the_function_yields_and_resumes_on_a_second_call(tmp_path):
    r = python(tmp_path, """
        import json, hog

        @hog.sweep(gpus="0,1", output_dir="grid", display="quiet")
        def grid(lrs):
            '''A learning-rate grid.'''
            for lr in lrs:
                yield {"cmd": f"echo lr={lr} >> ran.txt", "name": f"lr{lr}"}

        first = grid([0.1, 0.01])
        again = grid([0.1, 0.01])
        print(json.dumps({"doc": grid.__doc__, "first": first.exit_code,
                          "names": [j.name for j in first], "again": again.exit_code,
                          "attempts": [j.attempt for j in again],
                          "listed": list(grid.jobs([1]))}))
    """)
    got = last_json(r)
    assert got["doc"] == "A learning-rate grid."
    assert got["first"] == 0 and got["names"] == ["lr0.1", "lr0.01"]
    assert got["again"] == 0 and got["attempts"] == [1, 1]     # succeeded jobs were skipped
    assert sorted((tmp_path / "ran.txt").read_text().split()) == ["lr=0.01", "lr=0.1"]
    assert got["listed"] == [{"cmd": "echo lr=1 >> ran.txt", "name": "lr1"}]


def test_bad_options_or_jobs_raise_before_anything_runs(tmp_path):
    r = python(tmp_path, """
        import json, hog
        seen = []
        for call in (lambda: hog.run(["true"], gpus="0", colour="red"),
                     lambda: hog.run([{"cmd": "true", "gpus": "lots"}], gpus="0"),
                     lambda: hog.run(["true"], gpus="0", grace=-1),
                     lambda: hog.run(["true"], job_file="jobs.txt", gpus="0"),
                     lambda: hog.run(job_file="missing.txt", gpus="0"),
                     lambda: hog.sweep(gpus="0", colour="red")(lambda: [])):
            try:
                call()
                seen.append("no error")
            except (TypeError, hog.HogError) as e:
                seen.append(f"{type(e).__name__}: {e}")
        print(json.dumps(seen))
    """)
    seen = last_json(r)
    assert seen[0].startswith("TypeError: hog.run: unknown option(s) colour")
    assert seen[1].startswith("InputError: hog.run (job 0): bad value 'lots' for 'gpus'")
    assert seen[2] == "UsageError: --grace must be 0 or more seconds"
    assert seen[3].startswith("UsageError: hog.run: give jobs, job_file= or job_yielder=")
    assert seen[4].startswith("InputError: missing.txt: job file not found")
    assert seen[5].startswith("TypeError")
    assert not (tmp_path / "output").exists()


def test_a_generator_that_raises_part_way_runs_what_it_yielded_and_exits_1(tmp_path):
    r = python(tmp_path, """
        import json, hog
        def jobs():
            yield "echo one"
            raise RuntimeError("out of ideas")
        result = hog.run(jobs(), gpus="0", output_dir="out", quiet=True)
        print(json.dumps([result.exit_code, [j.status for j in result]]))
    """)
    code, statuses = last_json(r)
    assert code == 1 and statuses == ["succeeded"]
    assert "out of ideas" in r.stderr and "script.py:" in r.stderr
    assert out(job_dir(tmp_path, 0, "out")) == "one\n"


def test_run_leaves_pythons_signal_handling_as_it_was_and_takes_cli_options(tmp_path):
    r = python(tmp_path, """
        import json, signal, hog
        before = [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)]
        result = hog.run("echo single", gpus="0", output_dir="out", quiet=True,
                         on_finish='echo "$HOG_SWEEP_STATUS" > finished.txt',
                         resources={"licence": 1})
        after = [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)]
        print(json.dumps([result.exit_code, before == after, len(result)]))
    """)
    assert last_json(r) == [0, True, 1]
    assert (tmp_path / "finished.txt").read_text() == "succeeded\n"
    assert_no_traceback(r.stderr)


def test_the_api_is_documented(tmp_path):
    r = python(tmp_path, """
        import hog
        for name in ("run", "results", "sweep"):
            assert getattr(hog, name).__doc__, name
        assert "hog.run" in hog.__doc__ and set(hog.__all__) <= set(dir(hog))
        print("[]")
    """)
    assert last_json(r) == []
    readme = (CHECKOUT / "README.md").read_text()
    assert "hog.run(" in readme and "hog.results(" in readme and "@hog.sweep" in readme
