"""The runner's side of a slot's pipe (``wire.Reader``): every message the pipe holds in
one read, frames that come in pieces, and a sender that goes in the middle of one.
Real ``multiprocess`` pipes; the sending end is ``wire.send``, as in a slot."""
import os
import pickle

import multiprocess
import pytest

from hog.backends import wire


@pytest.fixture
def pipe():
    ours, theirs = multiprocess.Pipe(duplex=True)
    yield ours, theirs
    for conn in (ours, theirs):
        if not conn.closed:
            conn.close()


def test_every_message_the_pipe_holds_comes_from_one_reading_in_order(pipe):
    ours, theirs = pipe
    for i in range(3):
        assert wire.send(theirs, ["message", i])
    assert wire.Reader(ours).messages() == [["message", 0], ["message", 1], ["message", 2]]


def test_a_frame_that_comes_in_pieces_is_read_whole(pipe):
    ours, theirs = pipe
    reader = wire.Reader(ours)
    reader.CHUNK = 7                    # each read takes a few bytes: the frame is in pieces
    big = {"payload": "x" * 100_000}    # (and larger than one pipe buffer)
    wire.send(theirs, "small")
    wire.send(theirs, big)
    got = []
    while len(got) < 2:
        got += reader.messages()
    assert got == ["small", big]


def test_a_sender_gone_in_the_middle_of_a_frame_leaves_what_came_before_then_eof(pipe):
    ours, theirs = pipe
    reader = wire.Reader(ours)
    wire.send(theirs, "whole")
    frame = pickle.dumps("never finished")
    os.write(theirs.fileno(), len(frame).to_bytes(4, "big") + frame[:3])
    theirs.close()
    assert reader.messages() == ["whole"]
    with pytest.raises(EOFError):
        reader.messages()


def test_a_closed_pipe_with_nothing_left_is_eof(pipe):
    ours, theirs = pipe
    theirs.close()
    with pytest.raises(EOFError):
        wire.Reader(ours).messages()


def test_every_message_of_a_job_comes_back_equal_and_of_its_own_class(pipe):
    from hog.messages import Dispatch, Ended, Started, Stop, StopHow, Withdrawn
    from hog.model import Job, JobProcess, Outcome, Status, Usage
    ours, theirs = pipe
    job = Job(7, "python train.py --lr 0.1", "sweep.yaml:3", name="lr-0.1", gpus=1,
              resources=(("memory", 2.0),), env=(("SEED", "1"),), cwd="/tmp", timeout=9.5,
              retries=2, priority=-1, gpu_ids=("1",), after=("prep",),
              params=(("lr", 0.1), ("layers", [2, 3]), ("opt", {"name": "adam"})))
    outcome = Outcome(index=7, name="lr-0.1", slot=1, status=Status.TIMEOUT, exit_code=None,
                      signal="SIGTERM", started=1.5, ended=2.5, pid=99, attempt=2,
                      err_path="/out/job_7/job_7.ERR", note="n",
                      usage=Usage(cpu_user_s=0.5, max_rss_bytes=1 << 20))
    messages = [
        Dispatch(job, 1, ("1",), "lr-0.1", attempt=2, source_pos=3, ident="k", ahead=True),
        [Ended(outcome, started_next=True),
         Started(1, 8, 100, 2.6, proc=JobProcess(100, 100, 100, "4242"))],
        Started(0, 9, 101, 3.0, host="node-2", gpu_ids=("0", "1")),
        Withdrawn(1, 8),
        Stop(StopHow.CANCEL),           # (not one of a job's: pickled as it is)
        (1, "a tuple"),
    ]
    for message in messages:
        assert wire.send(theirs, message)
    got = []
    reader = wire.Reader(ours)
    while len(got) < len(messages):
        got += reader.messages()
    assert got == messages
    assert [type(m) for m in got] == [type(m) for m in messages]
    assert got[1][0].outcome.status is Status.TIMEOUT
    assert wire.send(theirs, messages[1])
    assert wire.receive(ours) == messages[1]        # (the slot's side of the pipe)
