"""An example yielder: a small grid sweep. hog imports this file and runs the jobs
that yielder() yields, as they are yielded."""
import itertools


def yielder():
    for lr, seed in itertools.product([0.1, 0.01], [1, 2]):
        yield f"echo lr={lr} seed={seed} gpu=$CUDA_VISIBLE_DEVICES; sleep 0.5"
    # a mapping works too; 'cmd' is the command, 'name' names the job
    yield {"cmd": "echo evaluating; sleep 0.2", "name": "eval"}
