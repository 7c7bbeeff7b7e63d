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
