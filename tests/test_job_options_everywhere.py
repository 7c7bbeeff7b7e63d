"""Every job option is accepted by every source (a text directive, a YAML entry, a
yielder's mapping, ``hog add``, ``hog.run``) through the one validator
(``hog.sources.joboptions.job_kwargs``): the same options give the same stored job."""
import json
import sqlite3
import textwrap

import pytest

from hog.errors import InputError
from hog.sources.joboptions import KNOWN, job_kwargs

from .harness import job_file, run_hog, write
from .test_api import python

# every option but cmd, in each source's spelling; 'prep' is a job each source has first
OPTIONS = {"name": "train", "gpus": 1, "memory": "2G", "resources": {"lic": 1},
           "timeout": "90s", "retries": 2, "priority": 5, "after": ["prep"],
           "gpu_ids": ["0"], "env": {"A": "1", "B": "two words"}}


def stored(tmp_path, directory):
    db = sqlite3.connect(str(tmp_path / directory / ".hog" / "hog.sqlite"))
    try:
        name, spec = db.execute("SELECT name, spec FROM jobs WHERE name = 'train'").fetchone()
    finally:
        db.close()
    return name, json.loads(spec)


def test_the_option_set_names_every_job_option():
    assert set(OPTIONS) | {"cwd", "cmd"} == set(KNOWN)


def test_the_same_options_through_every_source_store_the_same_job(tmp_path):
    cwd = str(tmp_path)
    opts = {**OPTIONS, "cwd": cwd}
    mapping = json.dumps({"cmd": "echo run", **opts})
    # a text directive
    text = job_file(tmp_path, "echo prep  # hog: name=prep gpus=0",
                    f"echo run  # hog: name=train gpus=1 memory=2G lic=1 timeout=90s "
                    f"retries=2 priority=5 after=prep gpu_ids=0 env='A=1 B=\"two words\"' "
                    f"cwd={cwd}")
    # YAML
    yaml_file = write(tmp_path / "jobs.yaml", textwrap.dedent(f"""\
        jobs:
          - {{cmd: echo prep, name: prep, gpus: 0}}
          - {mapping}
        """))
    # a yielder's mapping
    yielder = write(tmp_path / "sweep.py", textwrap.dedent(f"""\
        import json
        def yielder():
            yield {{"cmd": "echo prep", "name": "prep", "gpus": 0}}
            yield json.loads({mapping!r})
        """))
    for directory, source in (("text", ("-j", text)), ("yaml", ("-j", yaml_file)),
                              ("yielder", ("-y", yielder))):
        r = run_hog(tmp_path, *source, "--gpus", "0", "-o", directory)
        assert "unknown job option" not in r.stderr and r.returncode == 1, r.stderr
    # hog add
    assert run_hog(tmp_path, "add", "add", "--name", "prep", "--gpus", "0", "--",
                   "echo prep").returncode == 0
    r = run_hog(tmp_path, "add", "add", "--name", "train", "--gpus", "1", "--memory", "2G",
                "--resources", "lic=1", "--timeout", "90s", "--retries", "2", "--priority", "5",
                "--after", "prep", "--gpu-ids", "0", "--env", "A=1", "--env", "B=two words",
                "--cwd", cwd, "--", "echo run")
    assert r.returncode == 0, r.stderr
    # hog.run
    r = python(tmp_path, f"""
        import json, hog
        hog.run([{{"cmd": "echo prep", "name": "prep", "gpus": 0}}, json.loads({mapping!r})],
                gpus="0", output_dir="api", display="quiet")
        """)
    assert "unknown job option" not in r.stderr and "Traceback" not in r.stderr, r.stderr
    specs = {d: stored(tmp_path, d) for d in ("text", "yaml", "yielder", "add", "api")}
    expected = specs["yaml"]
    assert expected[1]["resources"] == [["lic", 1.0], ["memory", 2 * 2 ** 30]]
    assert expected[1]["env"] == [["A", "1"], ["B", "two words"]]
    assert expected[1]["cwd"] == cwd and expected[1]["timeout"] == 90.0
    for directory, found in specs.items():
        assert found == expected, directory


@pytest.mark.parametrize("key, mapping_form, text_form", [
    ("env", {"A": "1", "B": "x y"}, "A=1 B='x y'"),
    ("env", {"A": "1"}, ["A=1"]),
    ("resources", {"lic": 1, "disk": 2}, "lic=1 disk=2"),
    ("after", ["a", "b"], "a,b"),
    ("gpu_ids", ["0", "1"], "0,1"),
    ("memory", 2 ** 30, "1G"),
])
def test_each_option_takes_its_mapping_form_and_its_text_form_alike(key, mapping_form, text_form):
    assert job_kwargs({key: mapping_form}, "x") == job_kwargs({key: text_form}, "x")


@pytest.mark.parametrize("raw", [{"memory": "lots"}, {"env": "NOEQUALS"}, {"env": 3},
                                 {"resources": "lic"}, {"memroy": "2G"}])
def test_a_malformed_option_is_an_input_error_in_every_spelling(raw):
    with pytest.raises(InputError):
        job_kwargs(raw, "x")


def test_a_yielder_mapping_with_memory_runs(tmp_path):
    yielder = write(tmp_path / "sweep.py", "def yielder():\n"
                                           "    yield {'cmd': 'echo hi', 'memory': '1G'}\n")
    r = run_hog(tmp_path, "-y", yielder, "--gpus", "0", "--gpu-memory", "8G")
    assert r.returncode == 0, r.stderr
