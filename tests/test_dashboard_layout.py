"""The dashboard fits the terminal it is drawn on: at 60, 80 and 200 columns every line
fits and the header is one line, the last output line gets the width the fixed
columns leave, the failures stay on screen when there are more slots than rows (the
slots that do not fit summed up in one line), and a resize redraws the whole frame
with no stale rows, even on a terminal that re-wraps its lines."""
import io
import re
import time

import pytest
from rich.console import Console

from hog.views.dashboard import FailureView, SlotView, Snapshot, render

from .harness import assert_no_traceback, job_file, pid_alive, wait_for
from .terminal import Terminal
from .test_attach import release_all, release_gate, start_detached

WAIT = "while [ ! -e release ]; do sleep 0.05; done"
OUTPUT = "epoch 3/10 " + "loss=0.1234 " * 30          # a long last output line
NOW = 1_000_000.0


def snap(slots: int = 2, failures: int = 2, title: str = "output", notice: str = "") -> Snapshot:
    views = tuple(SlotView(str(i), str(i), f"train-lr=0.001-seed={i}-a-long-job-name" if i % 3
                           else None, str(i), NOW - 75, OUTPUT) for i in range(slots))
    fails = tuple(FailureView(f"failing-{i}", "timeout, killed by SIGTERM",
                              f"/data/out/job_{i}/job_{i}.ERR") for i in range(failures))
    busy = sum(1 for v in views if v.job)
    return Snapshot(title, NOW, NOW - 100, 10, failures, 0, busy, 40, 55.0, views, fails,
                    failures, notice)


def drawn(s: Snapshot, width: int, height=None) -> list:
    console = Console(width=width, height=height or 1000, file=io.StringIO(),
                      color_system=None, legacy_windows=False)
    console.print(render(s, width, height))
    return console.file.getvalue().splitlines()


@pytest.mark.parametrize("width", [60, 80, 200])
def test_at_each_width_every_line_fits_and_the_header_is_one_line(width):
    lines = drawn(snap(title="/scratch/someone/sweeps/2026/a-long-output-dir"), width)
    assert all(len(line) <= width for line in lines), lines
    assert lines[0].startswith("hog ") and "ETA 55s" in lines[0]
    assert re.search(r"\d+% 12/53", lines[0]), lines[0]
    assert lines[1].startswith("10 done") and "queued" in lines[1]


@pytest.mark.parametrize("width", [60, 80, 200])
def test_the_last_output_column_gets_the_spare_width(width):
    lines = drawn(snap(), width)
    header = next(line for line in lines if line.rstrip().endswith("last output"))
    row = next(line for line in lines if "train-lr" in line)
    column = header.index("last output")
    shown = row[column:].rstrip("…")
    assert OUTPUT.startswith(shown) and len(row) == width
    assert len(shown) >= (width - 22) // 2, (width, len(shown), row)


def test_the_header_drops_elapsed_before_it_cuts_the_title():
    wide, narrow = drawn(snap(), 200)[0], drawn(snap(), 60)[0]
    assert "elapsed 1m40s" in wide and "hog output " in wide
    assert "hog output " in narrow and "ETA" in narrow
    cut = drawn(snap(title="/a/very/long/path/to/the/output/of/the/sweep/here"), 60)[0]
    assert cut.startswith("hog …") and cut.count("━") >= 10 and "ETA 55s" in cut


@pytest.mark.parametrize("width,height", [(60, 12), (80, 24), (200, 15)])
def test_more_slots_than_rows_sums_up_the_rest_and_keeps_the_failures(width, height):
    lines = drawn(snap(slots=40, failures=5, notice="stopped by Ctrl-C"), width, height)
    assert len(lines) <= height and all(len(line) <= width for line in lines)
    more = [line for line in lines if line.startswith("... ")]
    assert len(more) == 1, lines
    shown = sum(1 for line in lines if re.match(r"\s+\d+  \d", line))
    hidden_busy = sum(1 for i in range(shown, 40) if i % 3)
    assert more[0] == f"... {40 - shown} more slots ({hidden_busy} busy)"
    assert any(line.startswith("latest failures") for line in lines)
    assert sum(1 for line in lines if "failing-" in line) >= 2
    assert lines[-1] == "stopped by Ctrl-C"


def test_everything_is_shown_when_it_fits():
    lines = drawn(snap(slots=4, failures=3), 80, 24)
    assert not any(line.startswith("... ") for line in lines)
    assert sum(1 for line in lines if "failing-" in line) == 3 and len(lines) == 2 + 5 + 4


def test_a_control_character_in_a_name_is_shown_escaped():
    s = snap(slots=0, failures=0)
    s = Snapshot(**{**s.__dict__, "slots": (SlotView("0", "0", "bad\x1b[2Jname", "0", NOW),),
                    "running": 1})
    lines = drawn(s, 80)
    assert any("bad\\x1b[2Jname" in line for line in lines), lines


# ------------------------------------------------------------ on a real terminal
def frame_ready(term, *words):
    """The screen once one frame with every word in it is drawn (no stale rows of an
    earlier frame: each word once)."""
    def check(_text):
        lines = term.screen().text
        return lines if all(sum(w in line for line in lines) == 1 for w in words) else None
    return check


@pytest.mark.parametrize("cols", [60, 80, 200])
def test_on_a_terminal_of_60_80_and_200_columns_lines_fit_and_failures_show(tmp_path, cols):
    job_file(tmp_path, f"echo '{OUTPUT}'; {WAIT}  # hog: name=a-rather-long-job-name-for-60",
             "echo boom >&2; exit 3  # hog: name=broken")
    term = Terminal(tmp_path, "--job_file", "jobs.txt", "--gpus", "0,0", rows=20, cols=cols)
    lines = term.wait_for(frame_ready(term, "hog ", "last output", "latest failures",
                                      "epoch 3/10", "broken"),
                          what="a frame with the running job's output and the failure")
    screen = term.screen()
    assert screen.overflows == 0, lines
    assert all(len(line) <= cols for line in lines)
    head = next(line for line in lines if line.startswith("hog "))
    assert "ETA" in head, head               # the whole header on its one line
    row = next(line for line in lines if "epoch 3/10" in line)
    assert len(row) == cols and row.endswith("…")
    (tmp_path / "release").touch()
    assert term.wait_exit() == 1
    assert_no_traceback(term.text)


def test_more_slots_than_rows_keeps_the_failures_on_the_screen(tmp_path):
    job_file(tmp_path, "exit 5  # hog: name=the-failure", *[WAIT] * 8)
    term = Terminal(tmp_path, "--job_file", "jobs.txt", "--gpus", ",".join("0" * 8),
                    rows=9, cols=80)
    lines = term.wait_for(frame_ready(term, "latest failures", "the-failure", "more slots"),
                          what="the failures under a summed-up slot table")
    assert len(lines) <= 9 and term.screen().overflows == 0
    assert re.match(r"\.\.\. \d+ more slots \(\d+ busy\)", [line for line in lines
                                                           if "more slots" in line][0])
    (tmp_path / "release").touch()
    assert term.wait_exit() == 1


def redrawn_at(term, cols: int, words, reflow: bool = True) -> list:
    """The screen once a whole frame is drawn at ``cols`` after a resize: each of
    ``words`` exactly once (no stale row of the earlier frame), every line fits and
    the longest (the running job's output) fills the width."""
    deadline = time.monotonic() + 10
    while True:
        term.pump()
        lines = term.screen(reflow).text
        clean = [line for line in lines if line]
        if len(clean) == len(words) and all(sum(w in line for line in clean) == 1
                                            for w in words) \
                and max(len(line) for line in clean) == cols:
            return lines
        assert time.monotonic() < deadline, "stale rows after the resize:\n" + "\n".join(lines)


@pytest.mark.parametrize("reflow", [True, False], ids=["rewrapping", "cutting"])
def test_narrowing_the_window_mid_run_redraws_without_stale_rows(tmp_path, reflow):
    job_file(tmp_path, f"echo '{OUTPUT}'; {WAIT}  # hog: name=trainer",
             f"echo '{OUTPUT}'; {WAIT}  # hog: name=second")
    term = Terminal(tmp_path, "--job_file", "jobs.txt", "--gpus", "0,0", rows=20, cols=160)
    words = ("hog ", "done", "last output", "trainer", "second")
    term.wait_for(frame_ready(term, *words), what="the first frame at 160 columns")
    term.resize(20, 60)
    lines = redrawn_at(term, 60, words, reflow)
    assert lines[0].startswith("hog ")
    term.resize(20, 200)                    # and wider again: the output gets the room
    redrawn_at(term, 200, words, reflow)
    (tmp_path / "release").touch()
    assert term.wait_exit() == 0


def test_hog_attach_fits_and_redraws_on_a_resize_too(tmp_path):
    runner = start_detached(tmp_path, f"echo '{OUTPUT}'; {release_gate(0)}  # hog: name=trainer",
                            f"echo '{OUTPUT}'; {release_gate(1)}  # hog: name=second")
    term = Terminal(tmp_path, "attach", "output", rows=20, cols=160)
    words = ("hog ", "done", "last output", "trainer", "second", "q or Ctrl-C")
    term.wait_for(frame_ready(term, *words), what="attach's first frame at 160 columns")
    term.resize(20, 60)
    lines = redrawn_at(term, 60, words)
    assert term.screen().overflows == 0 and lines[0].startswith("hog ")
    release_all(tmp_path, 2)
    assert term.wait_exit(30) == 0
    wait_for(lambda: not pid_alive(runner), 20, what="the runner to end")
