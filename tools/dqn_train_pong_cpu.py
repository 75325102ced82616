"""Train the cpu scale's Pong learner (``dqn.pong_cpu_config()``, seed 0) up to TOTAL steps, in legs.

``python tools/dqn_train_pong_cpu.py TOTAL [THREADS]`` resumes from the checkpoint that
``python -m papernotes_core.dqn`` at ``PAPERNOTES_SCALE=cpu`` uses
(``$PAPERNOTES_CHECKPOINTS/dqn/cpu_pong_cpu.pt``), trains up to TOTAL steps (a checkpoint may be
extended to a larger TOTAL) with THREADS torch threads (default 2), and prints the diagnostics as
they are logged. The chapter's run was trained in legs this way (a 200,000-step pilot, then the
rest); the study itself, run afterwards, finds the finished checkpoint, evaluates it and writes
``results/cpu/dqn.json``.
"""
import sys, time, torch
from papernotes_core import dqn, runtime
from papernotes_core.dqn import agent
total = int(sys.argv[1])
torch.set_num_threads(int(sys.argv[2]) if len(sys.argv) > 2 else 2)
cfg = dqn.pong_cpu_config(total_steps=total)
path = runtime.checkpoints_dir() / "dqn" / "cpu_pong_cpu.pt"
def log(step, d):
    print(time.strftime("%H:%M:%S"), step, {k: (round(v, 4) if isinstance(v, float) else v) for k, v in d.items()}, flush=True)
res = agent.train(cfg, 0, progress=False, checkpoint=path, on_log=log)
print("done", res.steps, "seconds", res.seconds, "eval_s", res.eval_seconds, "updates", res.updates, flush=True)
