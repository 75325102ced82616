"""Re-run the first 200k steps of the committed 500k-step Pong run of the 2013 preset (torch RMSprop, an update every 4 steps,
seed 0) with the diagnostics, to see what it did. Writes results/cpu/dqn_pong_2013_rerun.json."""
import dataclasses, sys
from papernotes_core import dqn, results
cpu = dqn.Config.cpu()
atari = dataclasses.replace(cpu.atari, total_steps=200_000, heldout_states=500, eval_every=100_000, checkpoint_every=50_000)
config = dqn.Config(cartpole_seeds=(), atari=atari, games=("Pong",), atari_seed=0, threads=1)
out = dqn.run(config, scale="cpu", write=False, progress=False,
              command="python tools/dqn_pong_2013_rerun.py (the first 200k steps of the committed cpu Pong run of Config.cpu().atari, with diagnostics)")
out["slug"] = "dqn_pong_2013_rerun"
print(results.write(out))
print({k: v for k, v in out["metrics"].items()})
