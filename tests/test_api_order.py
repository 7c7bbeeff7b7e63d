"""``hog.results`` works after ``hog.run`` (and ``@hog.sweep``) in the same process, as
the README's notebook example calls them; no submodule of ``hog`` takes the name of
an API function."""
import pkgutil

import hog

from .test_api import last_json, python


def test_results_after_run_in_one_process(tmp_path):
    r = python(tmp_path, """
        import json, hog
        result = hog.run(["echo one", "exit 3"], gpus="0", output_dir="out", display="quiet")
        res = hog.results("out")
        again = hog.run(["echo one", "exit 3"], gpus="0", output_dir="out", display="quiet")
        print(json.dumps([result.exit_code, [j.status for j in res],
                          [j.status for j in hog.results("out")], again.exit_code,
                          callable(hog.results), callable(hog.run)]))
        """)
    assert last_json(r) == [1, ["succeeded", "failed"], ["succeeded", "failed"], 1, True, True]


def test_results_after_a_decorated_sweep_and_with_sweep_wide_limits(tmp_path):
    r = python(tmp_path, """
        import json, hog

        @hog.sweep(gpus="none", output_dir="grid", display="quiet", retries=1,
                   max_failures=1)
        def grid():
            yield {"cmd": "exit 1", "name": "bad", "gpus": 0}
            yield {"cmd": "echo later", "name": "later", "gpus": 0}

        code = grid().exit_code
        print(json.dumps([code, {j.name: [j.status, j.attempt] for j in hog.results("grid")}]))
        """)
    code, jobs = last_json(r)
    assert code == 1
    assert jobs["bad"] == ["failed", 2]
    assert jobs["later"][0] in ("queued", "succeeded")     # cpu slots: it may have started


def test_no_submodule_of_hog_shadows_an_api_name():
    api = {"run", "sweep", "results", "JobRecord", "Results", "SweepResult", "HogError"}
    assert not api & {m.name for m in pkgutil.iter_modules(hog.__path__)}


def test_unknown_keyword_of_hog_run_is_still_a_type_error(tmp_path):
    r = python(tmp_path, """
        import json, hog
        try:
            hog.run(["echo"], gpus="0", max_failure=1)
        except TypeError as e:
            print(json.dumps(str(e)))
        """)
    assert "max_failure" in last_json(r) and "max_failures" in last_json(r)
