"""``hog report DIR``: a self-contained HTML page about a sweep, checked in a real
headless Chromium (what it draws, what it lists, that it needs no network and logs
no script error). The browser tests are skipped only where no Chromium binary exists
(Debian/Ubuntu: ``apt-get install -y chromium``)."""
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid
import zlib
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import List, Tuple

import pytest

from .harness import (
    CHECKOUT,
    assert_no_traceback,
    job_file,
    run_hog,
    start_hog,
    status_counts,
    wait_for,
)

if str(CHECKOUT) not in sys.path:
    sys.path.insert(0, str(CHECKOUT))

from benchmarks.bench_report import synthetic_sweep  # noqa: E402,F401  (the report tests' sweep)
from hog.views.report.pack import unpack  # noqa: E402  (the checkout first on the path)

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome",
                                                "google-chrome-stable")) if p), None)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium binary to render the report in (Debian/Ubuntu: "
                             "apt-get install -y chromium)")

FAILED_RED = (0xe6, 0x39, 0x46)         # the report's colour for failed jobs
SUCCEEDED = (0x2a, 0x9d, 0x8f)

# slots 0,0,1,1 and a CPU slot: two failures (one with HTML in its stderr), a job that
# fails once and succeeds when run again, a CPU-only job and a 2-GPU job
SWEEP = [
    "echo alpha; sleep 0.4                                       # hog: name=alpha",
    "echo beta; sleep 0.3                                        # hog: name=beta",
    "printf 'step 1\\nloading <script>alert(1)</script> & \"more\"\\n' >&2; exit 3"
    "   # hog: name=broken",
    "if [ \"$HOG_ATTEMPT\" -lt 2 ]; then echo 'flaky first try' >&2; exit 1; fi; sleep 0.2"
    "   # hog: name=flaky retries=1",
    "echo on the cpu; sleep 0.3                                  # hog: name=cpujob gpus=0",
    "sleep 0.4                                                   # hog: name=wide gpus=2",
    "printf 'Traceback (most recent call last):\\nRuntimeError: CUDA out of memory\\n' >&2; "
    "exit 1   # hog: name=oom",
    "sleep 0.2                                                   # hog: name=gamma",
]


# ------------------------------------------------------------------ helpers
@dataclass
class Rendered:
    dom: str
    summary: dict
    console: List[str]          # console messages the page logged
    page_requests: List[str]    # network requests the page made (none allowed)
    png: Path


def render(page: Path, tmp_path: Path, size: Tuple[int, int] = (1400, 1500),
           budget_ms: int = 5000, fragment: str = "") -> Rendered:
    """Load ``page`` in headless Chromium with every network request doomed to fail;
    return the DOM after the scripts ran, its console, its requests and a screenshot.
    A Chromium that hangs (seen about once in ten loaded suite runs, the page drawn in
    4 s otherwise) is killed after 60 s and started once more, afresh."""
    for tries_left in (1, 0):
        work = tmp_path / f"chromium-{uuid.uuid4().hex[:8]}"
        work.mkdir()
        png, netlog = work / "shot.png", work / "netlog.json"
        ran = _chromium(page, work, png, netlog, size, budget_ms, fragment)
        if ran is not None:
            break
        if not tries_left:
            pytest.fail("chromium did not finish rendering the report within 60 s, twice")
    assert ran is not None
    proc, dom, log = ran
    assert proc.returncode == 0, log[-3000:]
    found = re.search(r'<pre id="hog-rendered"[^>]*>([^<]*)</pre>', dom)
    assert found and found.group(1), f"the page wrote no summary of what it drew:\n{log[-3000:]}"
    summary = json.loads(_unescape(found.group(1)))
    console = [line for line in log.splitlines() if ":CONSOLE" in line]
    requests = []
    for event in json.loads(netlog.read_text()).get("events", []):
        params = event.get("params") or {}
        url = params.get("url", "")
        if "file://" in str(params.get("network_isolation_key", "")) \
                and not url.startswith("file:"):
            requests.append(url)
    return Rendered(dom=dom, summary=summary, console=console, page_requests=requests, png=png)


def _chromium(page: Path, work: Path, png: Path, netlog: Path, size: Tuple[int, int],
              budget_ms: int, fragment: str):
    """One headless Chromium run: (process, DOM, log), or None if it hung."""
    argv = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", f"--user-data-dir={work / 'profile'}",
            "--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND",
            f"--log-net-log={netlog}", "--enable-logging=stderr", "--v=0",
            f"--virtual-time-budget={budget_ms}", f"--window-size={size[0]},{size[1]}",
            "--run-all-compositor-stages-before-draw", "--hide-scrollbars",
            f"--screenshot={png}", "--dump-dom", page.as_uri() + fragment]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, cwd=str(work))
    try:
        dom, log = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return None
    finally:
        try:                                    # helpers chromium may leave behind
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return proc, dom, log


def _unescape(text: str) -> str:
    import html
    return html.unescape(text)


def read_png(path: Path) -> Tuple[int, int, List[bytes]]:
    """Width, height and RGB rows of an 8-bit PNG (what Chromium writes)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    pos, idat = 8, []
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        pos += 12 + n
    assert depth == 8 and ctype in (2, 6) and interlace == 0, "unexpected PNG format"
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(b"".join(idat))
    stride = w * bpp
    rows, prev = [], bytearray(stride)
    for y in range(h):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if kind == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 255
        elif kind == 2:
            line = bytearray((a + b) & 255 for a, b in zip(line, prev))
        elif kind == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + (left + prev[i]) // 2) & 255
        elif kind == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b, c = prev[i], (prev[i - bpp] if i >= bpp else 0)
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line) if bpp == 3 else
                    bytes(v for i, v in enumerate(line) if i % 4 != 3))
        prev = line
    return w, h, rows


def pixels_of(rows: List[bytes], rgb: Tuple[int, int, int]) -> int:
    needle = bytes(rgb)
    return sum(sum(1 for i in range(0, len(r), 3) if r[i:i + 3] == needle) for r in rows)


class _Text(HTMLParser):
    """The text inside elements with a given class, and every tag name seen."""

    def __init__(self, cls: str):
        super().__init__()
        self.cls, self.depth, self.parts, self.tags = cls, 0, [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if self.depth:
            self.depth += 1
        elif self.cls in (dict(attrs).get("class") or "").split():
            self.depth = 1
            self.parts.append("")

    def handle_endtag(self, tag):
        if self.depth:
            self.depth -= 1

    def handle_data(self, data):
        if self.depth:
            self.parts[-1] += data


def texts_of_class(page: str, cls: str) -> List[str]:
    parser = _Text(cls)
    parser.feed(page)
    return parser.parts


def embedded_data(page: str) -> dict:
    found = re.search(r'<script type="application/json" id="hog-data">(.*?)</script>', page,
                      re.S)
    assert found, "the page embeds no data"
    return unpack(json.loads(found.group(1)))     # its columns come packed


def run_sweep(tmp_path: Path, lines: List[str], *args) -> Path:
    jobs = job_file(tmp_path, *lines)
    r = run_hog(tmp_path, "--job_file", jobs, *args, "--display", "plain", timeout=90)
    assert r.returncode in (0, 1), r.stderr
    return tmp_path / "output"


def make_report(cwd: Path, *args) -> subprocess.CompletedProcess:
    r = run_hog(cwd, "report", *args, timeout=120)
    assert_no_traceback(r.stderr)
    return r


# ------------------------------------------------------------------ tests
@needs_chromium
@pytest.mark.timeout(240)
def test_report_of_a_real_sweep_draws_every_attempt_on_its_slot_and_lists_failures(tmp_path):
    # (--no-oom-retry: the job "oom" may share its GPU, and would then run again alone)
    out = run_sweep(tmp_path, SWEEP, "--gpus", "0,0,1,1", "--cpu_slots", "1",
                    "--no-oom-retry")
    r = make_report(tmp_path, "output")
    assert r.returncode == 0, r.stderr
    page_path = out / "report.html"
    assert r.stdout.strip() == str(page_path)
    page = page_path.read_text()

    # self-contained: nothing is fetched, linked or imported
    assert not re.search(r"\b(src|href)\s*=", page)
    assert "http://" not in page and "https://" not in page and "@import" not in page

    shown = render(page_path, tmp_path)
    s = shown.summary
    assert s["errors"] == [] and shown.console == [], (s["errors"], shown.console)
    assert shown.page_requests == []
    # a row per slot: the runner's four GPU slots, then the CPU slot that ran cpujob
    assert s["laneLabels"] == ["GPU 0 0", "GPU 0 1", "GPU 1 2", "GPU 1 3", "CPU cpu0"]
    # 8 jobs, flaky's first attempt, and the second GPU of the 2-GPU job
    assert s["bars"] == 10 and s["earlier"] == 1 and s["parts"] == 1 and s["running"] == 0
    assert s["byStatus"] == {"succeeded": 7, "failed": 3}
    # the two failed jobs are drawn, in the failure colour, where the page says
    assert s["failedBars"] == 2 and s["failedVisible"] == 2
    assert s["histogramBars"] >= 1 and s["usagePoints"] >= 4

    data = embedded_data(page)
    bars = data["bars"]
    names = [data["jobs"]["name"][j] for j in bars["job"]]
    lanes = {n: data["lanes"][lane]["slot"] for n, lane, flags in
             zip(names, bars["lane"], bars["flags"]) if not flags & 2}
    assert lanes["cpujob"] == "cpu0"
    assert all(lanes[n] in ("0", "1", "2", "3") for n in names if n != "cpujob")
    wide = [(data["lanes"][lane]["label"], bool(f & 2)) for n, lane, f in
            zip(names, bars["lane"], bars["flags"]) if n == "wide"]
    assert sorted(wide) == [("GPU 0", False), ("GPU 1", True)]   # both of its GPUs
    exit_codes = {n: x for n, x, f in zip(names, bars["x"], bars["flags"]) if not f & 1}
    assert exit_codes["broken"] == 3 and exit_codes["oom"] == 1 and exit_codes["alpha"] == 0

    # each failed job with the end of its stderr, escaped: shown as text, never as markup
    failures = texts_of_class(shown.dom, "failure")
    assert len(failures) == 2 and s["failures"] == 2
    broken = next(f for f in failures if f.startswith("broken"))
    assert "exit code 3" in broken
    assert 'loading <script>alert(1)</script> & "more"' in broken
    assert "RuntimeError: CUDA out of memory" in next(f for f in failures if f.startswith("oom"))
    parser = _Text("none")
    parser.feed(shown.dom)
    assert parser.tags.count("script") == 3             # the page's own three, no more
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    # summary: counts, and a utilisation figure
    chips = texts_of_class(shown.dom, "chip")
    assert chips == ["6 succeeded", "2 failed"]
    assert re.search(r"GPU-slot utilisation\s*\d+%", " ".join(texts_of_class(shown.dom, "card")))
    legend = " ".join(texts_of_class(shown.dom, "legend"))
    assert "succeeded" in legend and "failed" in legend and "earlier attempt" in legend

    # a link to a time range (what dragging across a chart sets) shows just that range
    a, b = round(data["span"] / 3, 3), round(data["span"] / 2, 3)   # as the link gives them
    inside = [st for st, s0, e0 in zip(bars["st"], bars["s"], bars["e"]) if e0 >= a and s0 <= b]
    zoomed = render(page_path, tmp_path, fragment=f"#t={a:.3f}-{b:.3f}").summary
    assert zoomed["view"] == pytest.approx([a, b], abs=0.001)
    assert sum(zoomed["byStatus"].values()) == len(inside) < 10

    # the screenshot shows it: bars in the success and failure colours
    w, h, rows = read_png(shown.png)
    assert (w, h) == (1400, 1500)
    assert pixels_of(rows, FAILED_RED) > 500 and pixels_of(rows, SUCCEEDED) > 2000
    assert len({rows[y][x:x + 3] for y in range(0, h, 7) for x in range(0, 3 * w, 21)}) > 20


@pytest.mark.timeout(120)
def test_report_while_a_runner_works_shows_running_jobs_and_never_writes_the_store(tmp_path):
    go = tmp_path / "go"
    hold = f"while [ ! -e {go} ]; do sleep 0.05; done"
    jobs = job_file(tmp_path, "true  # hog: name=quick", f"{hold}  # hog: name=held",
                    f"{hold}  # hog: name=held2", "true  # hog: name=later")
    hog = start_hog(tmp_path, "--job_file", jobs, "--gpus", "0,1", "--display", "plain")
    db = tmp_path / "output" / ".hog" / "hog.sqlite"

    def two_running():      # (the store hears of a start on the runner's next tick)
        held = re.findall(r"\[hog [\d:]+\] start held", hog.output)
        return len(held) == 2 and "done quick" in hog.output \
            and status_counts(tmp_path / "output").get("running") == 2
    wait_for(two_running, timeout=30, what="quick done and both held jobs running")
    r = make_report(tmp_path, "output", "--output", tmp_path / "live.html")
    assert r.returncode == 0, r.stderr
    data = embedded_data((tmp_path / "live.html").read_text())
    running = [data["jobs"]["name"][j] for j, f in zip(data["bars"]["job"], data["bars"]["flags"])
               if f & 4]
    assert sorted(running) == ["held", "held2"]
    assert data["now"] is not None                      # a "now" line: runners are active
    go.touch()
    assert hog.wait(60) == 0, hog.output
    assert "4 succeeded" in hog.output

    def store_files():
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
                for p in (db, db.with_name(db.name + "-wal")) if p.exists()}
    before = store_files()
    r = make_report(tmp_path, "output")
    assert r.returncode == 0, r.stderr
    assert {k: v for k, v in store_files().items() if k in before} == before
    data = embedded_data((tmp_path / "output" / "report.html").read_text())
    assert data["now"] is None and not any(f & 4 for f in data["bars"]["flags"])
    assert len(data["bars"]["s"]) == 4


def test_report_of_a_missing_directory_or_one_without_a_sweep_is_a_one_line_error(tmp_path):
    r = make_report(tmp_path, "nowhere")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip() == "hog: error: nowhere: no such directory"
    (tmp_path / "plain").mkdir()
    r = make_report(tmp_path, "plain")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "no hog sweep here" in r.stderr
    assert not (tmp_path / "plain" / "report.html").exists()
    assert os.listdir(tmp_path / "plain") == []
    assert run_hog(tmp_path, "add", "queued", "--", "true").returncode == 0
    r = make_report(tmp_path, "queued", "--output", tmp_path / "missing" / "r.html")
    assert r.returncode == 2
    assert r.stderr.strip() == (f"hog: error: {tmp_path / 'missing' / 'r.html'}: cannot write "
                                f"the report (No such file or directory)")


@needs_chromium
@pytest.mark.timeout(240)
def test_report_of_10000_jobs_is_small_and_renders_every_bar_quickly(tmp_path):
    counts = synthetic_sweep(tmp_path / "big", 10_000)
    t = time.monotonic()
    r = make_report(tmp_path, "big")
    made_s = time.monotonic() - t
    assert r.returncode == 0, r.stderr
    page_path = tmp_path / "big" / "report.html"
    size = page_path.stat().st_size
    assert size < 5_000_000, f"report of 10,000 jobs is {size:,} bytes"
    assert made_s < 30, f"hog report took {made_s:.1f}s for 10,000 jobs"

    shown = render(page_path, tmp_path, budget_ms=20000)
    s = shown.summary
    assert s["errors"] == [] and shown.console == []
    assert s["lanes"] == 8 and s["bars"] == 10_000
    assert s["byStatus"] == counts
    assert s["failedBars"] == s["failedVisible"] == counts["failed"]   # none hidden
    assert s["failures"] == 200          # listed with stderr; the rest are counted
    assert "and 200 more" in shown.dom
    assert s["renderMs"] < 10_000, f"drawing 10,000 jobs took {s['renderMs']} ms"


@pytest.mark.timeout(120)
def test_a_resumed_sweep_keeps_its_slot_rows_and_shows_each_attempt(tmp_path):
    jobs = job_file(tmp_path, "echo no >&2; exit 3  # hog: name=bad", "true  # hog: name=ok")
    for _ in range(2):                                  # the second run resumes the first
        r = run_hog(tmp_path, "--job_file", jobs, "--gpus", "0,1", "--display", "plain")
        assert r.returncode == 1, r.stderr
    assert make_report(tmp_path, "output").returncode == 0
    data = embedded_data((tmp_path / "output" / "report.html").read_text())
    assert [(ln["label"], ln["slot"], ln["group"]) for ln in data["lanes"]] == [
        ("GPU 0", "0", ""), ("GPU 1", "1", "")]         # one set of rows for both runs
    bars = data["bars"]
    shown = sorted((data["jobs"]["name"][j], a, data["statuses"][st], bool(f & 1))
                   for j, a, st, f in zip(bars["job"], bars["att"], bars["st"], bars["flags"]))
    assert shown == [("bad", 1, "failed", True), ("bad", 2, "failed", False),
                     ("ok", 1, "succeeded", False)]


@pytest.mark.timeout(120)
def test_runners_working_side_by_side_get_their_own_rows(tmp_path):
    go = tmp_path / "go"
    hold = f"while [ ! -e {go} ]; do sleep 0.05; done"
    jobs = job_file(tmp_path, *[f"{hold}  # hog: name=held{i}" for i in range(3)])
    first = start_hog(tmp_path, "--job_file", jobs, "--gpus", "0", "--display", "plain")
    wait_for(lambda: "start held0" in first.output, timeout=30, what="the first runner's job")
    second = start_hog(tmp_path, "--job_file", jobs, "--gpus", "1,1", "--display", "plain")
    wait_for(lambda: len(re.findall(r"\[hog [\d:]+\] start held", second.output)) == 2, timeout=30,
             what="the second runner's two jobs")
    go.touch()
    assert first.wait(60) == 0 and second.wait(60) == 0
    assert make_report(tmp_path, "output").returncode == 0
    data = embedded_data((tmp_path / "output" / "report.html").read_text())
    host = socket.gethostname()
    assert [(ln["group"], ln["label"], ln["slot"]) for ln in data["lanes"]] == [
        (f"runner 1 on {host}", "GPU 0", "0"),
        (f"runner 2 on {host}", "GPU 1", "0"), (f"runner 2 on {host}", "GPU 1", "1")]
    assert sorted(data["bars"]["lane"]) == [0, 1, 2]
