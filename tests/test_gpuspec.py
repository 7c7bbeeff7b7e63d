"""The --gpus spec: ids, repeats for extra slots, ranges, xN repeat counts, all."""
import pytest

from hog.errors import UsageError
from hog.gpus.spec import parse_gpus

from .harness import assert_no_traceback, job_file, run_hog


def no_discovery():
    raise AssertionError("discovery must not run for an explicit spec")


@pytest.mark.parametrize("spec, slots", [
    ("0", ["0"]),
    ("0,1", ["0", "1"]),
    ("0,0,1", ["0", "0", "1"]),
    ("1,0", ["1", "0"]),
    ("0-3", ["0", "1", "2", "3"]),
    ("2-2", ["2"]),
    ("0-3x2", ["0", "1", "2", "3", "0", "1", "2", "3"]),
    ("1x3", ["1", "1", "1"]),
    ("0x2,5", ["0", "0", "5"]),
    ("0-1,4", ["0", "1", "4"]),
    (" 0 , 1 ", ["0", "1"]),
    ("10,11", ["10", "11"]),
])
def test_spec_expands_to_one_entry_per_slot(spec, slots):
    assert parse_gpus(spec, no_discovery) == slots


@pytest.mark.parametrize("spec", [
    "GPU-5f1c2a3b-1111-2222-3333-444455556666",
    "MIG-5f1c2a3b-1111-2222-3333-444455556666",
])
def test_device_uuids_are_accepted_as_ids(spec):
    assert parse_gpus(spec, no_discovery) == [spec]
    assert parse_gpus(f"{spec},{spec}", no_discovery) == [spec, spec]


@pytest.mark.parametrize("spec", [None, "all", "ALL", " all "])
def test_all_or_no_spec_uses_discovered_gpus(spec):
    assert parse_gpus(spec, lambda: ["4", "7"]) == ["4", "7"]


@pytest.mark.parametrize("spec, bad", [
    ("a", "a"),
    ("0,a,1", "a"),
    ("0,,1", ""),
    ("3-1", "3-1"),
    ("0x0", "0x0"),
    ("-1", "-1"),
    ("0-", "0-"),
    ("1.5", "1.5"),
    ("0,1x", "1x"),
    ("0;1", "0;1"),
])
def test_invalid_spec_is_a_usage_error_naming_the_bad_item(spec, bad):
    with pytest.raises(UsageError) as e:
        parse_gpus(spec, no_discovery)
    assert repr(bad) in str(e.value) or f'"{bad}"' in str(e.value), str(e.value)


def test_empty_spec_is_a_usage_error():
    with pytest.raises(UsageError):
        parse_gpus("", no_discovery)


def test_cli_rejects_bad_gpus_with_exit_2_naming_the_item(tmp_path):
    job_file(tmp_path, "echo hi")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0,zz,1")
    assert r.returncode == 2
    assert "zz" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert_no_traceback(r.stderr)
    assert not (tmp_path / "output" / "job_0").exists()


def test_cli_range_with_repeat_gives_two_concurrent_slots_per_gpu(tmp_path):
    # four jobs that each wait until all four are running: only possible with 4 slots
    d = tmp_path / "t"
    d.mkdir()
    cmd = (f'touch {d}/$HOG_JOB_INDEX; echo "$CUDA_VISIBLE_DEVICES $HOG_SLOT"; '
           f'for i in $(seq 200); do [ $(ls {d} | wc -l) -ge 4 ] && exit 0; sleep 0.05; done; '
           f'exit 1')
    job_file(tmp_path, *[cmd] * 4)
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0-1x2")
    assert r.returncode == 0, r.stderr
    seen = [(tmp_path / "output" / f"job_{i}" / f"job_{i}.OUT").read_text().split()
            for i in range(4)]
    assert sorted(g for g, _ in seen) == ["0", "0", "1", "1"]
    assert sorted(s for _, s in seen) == ["0", "1", "2", "3"]
