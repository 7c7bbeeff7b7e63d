"""``hog gpus``: without SPEC, the GPUs discovery sees and what ``--gpus all`` would use;
``hog gpus [DIR] SPEC`` / ``--release GPU``: a request to the live runner on DIR (its
slots, a quarantined GPU given back), written to the store; the runner acts on it
within its next tick (0.5 s).
"""
import argparse
import os
from typing import List, Optional

from hog.cli.parsers import DEFAULT_DIR, DIR_HELP, check_default_dir, make_parser, sweep_dir
from hog.cli.verbs import open_store
from hog.errors import UsageError

__all__ = ["set_gpus", "gpus_parser", "cmd_gpus"]


def set_gpus(directory: str, spec: Optional[str], runner: Optional[int],
             release: Optional[str] = None) -> int:
    """``hog gpus [DIR] SPEC``: ask the live runner on ``directory`` to use ``spec``;
    ``--release GPU``: to place jobs on its quarantined GPU again."""
    if spec is not None:
        from hog.gpus.spec import parse_gpus  # only for this verb
        parse_gpus(spec, lambda: [])   # validate now; the runner resolves 'all' itself
    store = open_store(check_default_dir("gpus", directory))
    live = store.live_runners()
    if runner is not None:
        live = [r for r in live if r.id == runner]
    if not live:
        raise UsageError(f"no active runner on {directory}" +
                         (f" with id {runner}" if runner is not None else ""))
    if len(live) > 1:
        raise UsageError(f"{len(live)} runners are active ({', '.join(str(r.id) for r in live)});"
                         f" pick one with --runner ID")
    if release is not None:
        if release not in store.quarantined(live[0].id):
            raise UsageError(f"hog gpus --release {release}: runner {live[0].id} has not "
                             f"quarantined GPU {release}")
        store.request_release(live[0].id, release)
        print(f"hog: runner {live[0].id} (pid {live[0].pid}) will place jobs on GPU "
              f"{release} again")
    if spec is not None:
        store.request_gpus(live[0].id, spec)
        print(f"hog: runner {live[0].id} (pid {live[0].pid}) will use --gpus {spec}")
    return 0


def gpus_parser() -> argparse.ArgumentParser:
    p = make_parser(
        "hog gpus", "Without SPEC: show the GPUs discovery sees (nvidia-smi, within "
        "CUDA_VISIBLE_DEVICES), and what --gpus all would use. With SPEC: change the GPU "
        "slots of the live runner on DIR: new slots take jobs within a second, removed "
        "slots finish their job and retire.",
        usage="hog gpus [-h]\n       hog gpus [-h] [DIR] SPEC [--runner ID]\n"
              "       hog gpus [-h] [DIR] --release GPU [--runner ID]",
        epilog=f"DIR: {DIR_HELP}; with one word, that word is SPEC")
    p.add_argument("dir", metavar="DIR", nargs="?", help=DIR_HELP)
    p.add_argument("spec", metavar="SPEC", nargs="?",
                   help="the runner's new --gpus spec, e.g. 0,0,1,2")
    p.add_argument("--runner", type=int, metavar="ID",
                   help="which runner, when several are active on DIR (see hog status)")
    p.add_argument("--release", metavar="GPU",
                   help="place jobs on this quarantined GPU again (see hog status)")
    return p


def cmd_gpus(argv: List[str]) -> int:
    """``hog gpus``: the GPUs discovery sees; ``hog gpus [DIR] SPEC``: a runner's slots."""
    args = gpus_parser().parse_args(argv)
    if args.release is not None:
        if args.spec is not None:
            raise UsageError("hog gpus: --release goes with DIR alone: "
                             "hog gpus [DIR] --release GPU")
        return set_gpus(args.dir or DEFAULT_DIR, None, args.runner, args.release)
    if args.dir is not None:
        directory, spec = (args.dir, args.spec) if args.spec is not None else \
            (DEFAULT_DIR, args.dir)
        return set_gpus(sweep_dir(directory), spec, args.runner)
    if args.runner is not None:
        raise UsageError("hog gpus: --runner goes with a SPEC: hog gpus [DIR] SPEC --runner ID")
    from hog.gpus.discovery import query_gpus, visible_ids  # runs nvidia-smi: only here
    gpus = query_gpus()
    cvd = os.environ.get("CUDA_VISIBLE_DEVICES")
    if gpus is None:
        print("nvidia-smi: not available")
    else:
        for g in gpus:
            mem = "" if g.memory_total_mib is None else \
                f"  {g.memory_used_mib} / {g.memory_total_mib} MiB used"
            print(f"GPU {g.index}  {g.name}  {g.uuid}{mem}")
    ids = visible_ids(gpus, cvd)
    print(f"CUDA_VISIBLE_DEVICES: {cvd if cvd is not None else '(not set)'}")
    print(f"--gpus all would use: {','.join(ids) if ids else 'nothing'}")
    return 0
