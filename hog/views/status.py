"""``hog status DIR``: what it shows of a sweep, from its store. ``status_data`` is the
``hog status --json`` contract (its keys are always there; ``finished``: the jobs that
ended last, latest first, with what they used); ``status_lines`` is the
text for people. Both only read the store.

``waiting``: queued jobs no active runner can run, with what each waits for (a runner
with GPU 3, ...), as the runners recorded it.

Jobs the sweep's source no longer lists are in ``counts`` and ``total`` (they keep
their records), counted apart in ``not_in_source`` (by status in
``not_in_source_counts``), and flagged ``in_source: false`` in ``running``/``failed``."""
import os
import time
from typing import Any, Dict, List, Optional

from hog.humanize import fmt_duration, printable, shown_path
from hog.model import USAGE_FIELDS, Status
from hog.state.jobdir import BOOT_MARK, STATE_DIR, Layout
from hog.state.reading import SweepReader
from hog.state.runners import runner_alive


def status_data(store: SweepReader, directory: str, failed_limit: int = 1000,
                finished_limit: int = 1000) -> Dict[str, Any]:
    """What ``hog status --json`` prints. Its keys are always there (``counts`` has every
    status, zeros included), so scripts can rely on them. ``finished_limit``: how many
    of the jobs that ended last ``finished`` lists (the text shows none of them)."""
    now = time.time()
    layout = Layout(directory, store.meta("prefix") or "job_")
    runners = []
    for r in store.active_runners():
        runners.append(dict(id=r.id, pid=r.pid, host=r.host, gpus=r.gpus,
                            alive=runner_alive(r), started=r.started,
                            heartbeat_age_s=round(now - r.heartbeat, 1), request=r.request,
                            quarantined=store.quarantined(r.id)))
    alive = {r["id"] for r in runners if r["alive"]}
    running = [dict(id=r.id, name=r.name or layout.folder_name(r.id),
                    folder=layout.folder_name(r.id), slot=r.slot, gpus=r.gpus,
                    pid=r.pid, runner=r.runner, runner_alive=r.runner in alive,
                    attempt=r.attempt,
                    elapsed_s=None if r.started is None else round(now - r.started, 1),
                    command=r.command, in_source=bool(r.in_source))
               for r in store.rows_with_status("running")]
    failed: List[Dict[str, Any]] = []
    for status in Status.having("counts_as_failure"):
        for j in store.rows_with_status(status, failed_limit):
            failed.append(dict(id=j.id, name=j.name or layout.folder_name(j.id),
                               folder=layout.folder_name(j.id), status=j.status,
                               exit_code=j.exit_code, signal=j.signal, attempt=j.attempt,
                               gpus=j.gpus, slot=j.slot, started=j.started, ended=j.ended,
                               note=j.note, in_source=bool(j.in_source), **_usage(j)))
    failed.sort(key=lambda f: f["id"])
    ended = [s.value for s in Status if s.finished]
    finished = [dict(id=j.id, name=j.name or layout.folder_name(j.id), status=j.status,
                     attempt=j.attempt, gpus=j.gpus, started=j.started, ended=j.ended,
                     **_usage(j))
                for j in store.latest_ended(ended, finished_limit)] if finished_limit else []
    found = store.counts()
    counts = {s.value: found.pop(s.value, 0) for s in Status if s is not Status.HANDED}
    counts.update(found)
    gone = store.gone_counts()
    waits = [dict(id=i, name=n or layout.folder_name(i), waits_for=w)
             for i, n, w in store.waiting_jobs(failed_limit)]
    return dict(waiting=waits, output_dir=directory, source=store.meta("source"),
                schema_version=store.schema_version(), time=now, total=sum(counts.values()),
                counts=counts, runners=runners, running=running, failed=failed[:failed_limit],
                finished=finished,
                not_in_source=sum(gone.values()), not_in_source_counts=gone,
                resume_on_boot=_boot(directory))


def _boot(directory: str) -> Optional[Dict[str, str]]:
    """How the sweep is registered to resume after a reboot (None: it is not)."""
    state_dir = os.path.join(directory, STATE_DIR)
    if not os.path.exists(os.path.join(state_dir, BOOT_MARK)):
        return None
    from hog import boot  # only for a registered sweep: 2 ms of every status otherwise
    found = boot.registered(state_dir)
    return None if found is None else dict(how=found.how, name=found.name,
                                           script=found.script, text=found.describe())


def _usage(row) -> Dict[str, Any]:
    """What the job's latest attempt used (``model.Usage``; None: not known)."""
    return {name: getattr(row, name) for name in USAGE_FIELDS}


def status_lines(data: Dict[str, Any], directory: str, prefix: str) -> List[str]:
    """What ``hog status DIR`` prints, from ``status_data``."""
    lines: List[str] = []
    say = lines.append
    layout = Layout(directory, prefix)
    counts = data["counts"]
    total = sum(counts.values())
    order = ("queued", "running", "succeeded", "failed", "timeout", "interrupted", "cancelled",
             "skipped", "unschedulable")
    parts = [f"{counts[s]} {s}" for s in order if counts.get(s)]
    say(f"{directory}: {total} job(s): {', '.join(parts) or 'none'}")
    gone = data["not_in_source_counts"]
    if gone:
        kinds = ", ".join(f"{gone[s]} {s}" for s in order if gone.get(s))
        say(f"{data['not_in_source']} of them no longer in the source ({kinds}): kept, "
            f"not run, not counted")
    if data["source"]:
        say(f"source: {data['source']}")
    live = [r for r in data["runners"] if r["alive"]]
    for r in live:
        say(f"runner {r['id']}: pid {r['pid']} on {r['host']}, gpus {r['gpus']}"
            + (f", asked to {r['request']}" if r["request"] else ""))
        for why in r["quarantined"].values():
            say(f"  {why} (hog gpus {directory} --release GPU lets it serve again)")
    waiting = counts.get("queued", 0) - gone.get("queued", 0)
    if data.get("resume_on_boot"):
        say(f"resumes after a reboot: {data['resume_on_boot']['text']}")
    if not live:
        say("no runner is active" + (f"; start one to run the {waiting} queued job(s)"
                                     if waiting else ""))
    if data["waiting"]:     # jobs no active runner can run: what each waits for
        say("waiting for another runner:")
        for w in data["waiting"]:
            say(f"  {printable(w['name']):<16} {printable(w['waits_for'])}")
    if data["running"]:
        say("running:")
        for r in data["running"]:
            say(f"  {printable(r['name']):<16} slot {r['slot']}  gpus {r['gpus'] or '-':<6} "
                f"pid {r['pid'] or '-':<8} {fmt_duration(r['elapsed_s'])}"
                + ("" if r["runner_alive"] else
                   "  (its runner is gone: the next runner on this directory runs it again)"))
    if data["failed"]:
        say("failed:")
        for f in data["failed"][:20]:
            how = f"exit {f['exit_code']}" if f["exit_code"] is not None else \
                (f"killed by {f['signal']}" if f["signal"] else f["status"])
            name = f["name"] or layout.folder_name(f["id"])
            say(f"  {printable(name):<16} {f['status']:<13} {how:<18} "
                f"{shown_path(layout.err_path(f['id']))}"
                + ("" if f["in_source"] else "  (no longer in the source)"))
        if len(data["failed"]) > 20:
            say(f"  ... and {len(data['failed']) - 20} more (hog status --json lists all)")
    return lines
