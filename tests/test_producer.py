"""The producer: what it puts on the runner's queue. A file's jobs go in batches (one
message, not one per job, for the runner to take), the first job alone and at once; a
source that may wait between jobs sends each job as it comes; jobs read before a
source error are sent before the error."""
import pickle
import threading
import time

import pytest

from hog.messages import JobMsg, SourceEnd, SourceFailed, SourceTotal
from hog.sources import SourceSpec
from hog.sources.producer import BATCH, produce

from .harness import wait_for, write

pytestmark = pytest.mark.timeout(60)


def _produced(spec: SourceSpec) -> list:
    out: list = []
    produce(spec, out.append)
    return [pickle.loads(b) for b in out]


def _job_messages(messages: list) -> list:
    return [m for m in messages if isinstance(m, JobMsg)]


def test_a_files_jobs_come_in_batches_the_first_alone_every_job_once_in_order(tmp_path):
    write(tmp_path / "jobs.txt", "".join(f"echo {i}\n" for i in range(1000)))
    messages = _produced(SourceSpec("text", str(tmp_path / "jobs.txt")))
    batches = _job_messages(messages)
    assert len(batches[0].jobs) == 1
    assert max(len(m.jobs) for m in batches) <= BATCH
    assert len(batches) <= 1 + 1000 // (BATCH // 2), [len(m.jobs) for m in batches]
    jobs = [job for m in batches for job in m.jobs]
    assert [job.command for job in jobs] == [f"echo {i}" for i in range(1000)]
    assert [job.index for job in jobs] == list(range(1000))
    assert messages[-1] == SourceEnd(1000)
    assert SourceTotal(1000) in messages


def test_jobs_read_before_a_bad_line_are_sent_before_its_error(tmp_path):
    lines = [f"echo {i}" for i in range(150)] + ["echo bad  # hog: priority=abc"] + \
        [f"echo after {i}" for i in range(20)]
    write(tmp_path / "jobs.txt", "\n".join(lines) + "\n")
    messages = _produced(SourceSpec("text", str(tmp_path / "jobs.txt")))
    jobs = [job.command for m in _job_messages(messages) for job in m.jobs]
    assert jobs == lines[:150]
    assert isinstance(messages[-1], SourceFailed)
    assert messages[-1].text.startswith(f"{tmp_path / 'jobs.txt'}:151: bad value 'abc'")


def test_a_yielder_that_waits_has_each_job_sent_before_it_waits(tmp_path):
    """A yielder pauses (here until the test lets it go on) after its second job: that
    job must reach the runner during the pause, not wait for a batch to fill."""
    go_on = tmp_path / "go-on"
    write(tmp_path / "sweep.py", f"""\
import os, time
def yielder():
    yield "echo one"
    yield "echo two"
    while not os.path.exists({str(go_on)!r}):
        time.sleep(0.01)
    yield "echo three"
""")
    got: list = []
    producer = threading.Thread(target=produce, daemon=True, args=(
        SourceSpec("yielder", str(tmp_path / "sweep.py")), got.append))
    producer.start()
    try:
        wait_for(lambda: sum(len(pickle.loads(b).jobs) for b in list(got)
                             if isinstance(pickle.loads(b), JobMsg)) == 2,
                 20, what="both jobs before the pause")
    finally:
        go_on.touch()
        producer.join(20)
    messages = [pickle.loads(b) for b in got]
    assert [[job.command for job in m.jobs] for m in _job_messages(messages)] == \
        [["echo one"], ["echo two"], ["echo three"]]
    assert messages[-1] == SourceEnd(3)


def test_a_batch_waits_at_most_its_time_bound_for_a_slow_file_source(tmp_path, monkeypatch):
    """A YAML grid whose expansion is slow per job still sends what it has read within
    ``BATCH_S`` of the batch's first job (here: each job comes 5 ms after the last)."""
    import hog.sources.producer as producer

    write(tmp_path / "sweep.yaml", "jobs:\n  - sweep:\n      cmd: echo {x}\n      grid: {x: [" +
          ", ".join(str(i) for i in range(12)) + "]}\n")
    real = producer.open_source

    def slow(spec):
        for job in real(spec):
            time.sleep(0.005)
            yield job
    monkeypatch.setattr(producer, "open_source", slow)
    messages = _produced(SourceSpec("yaml", str(tmp_path / "sweep.yaml")))
    sizes = [len(m.jobs) for m in _job_messages(messages)]
    assert sum(sizes) == 12
    assert max(sizes) <= 2, sizes
