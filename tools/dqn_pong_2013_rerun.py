"""Re-run the first 200k steps of a committed 500k-step run of the 2013 preset (torch RMSprop, an
update every 4 steps, seed 0) with the diagnostics, to see what it did.

``python tools/dqn_pong_2013_rerun.py [GAME]`` (GAME: ``Pong``, the default, or ``Breakout``)
writes ``results/cpu/dqn_<game>_2013_rerun.json``."""
import dataclasses, sys
from papernotes_core import dqn, results
game = sys.argv[1] if len(sys.argv) > 1 else "Pong"
cpu = dqn.Config.cpu()
atari = dataclasses.replace(cpu.atari, total_steps=200_000, heldout_states=500, eval_every=100_000, checkpoint_every=50_000)
config = dqn.Config(cartpole_seeds=(), atari=atari, games=(game,), atari_seed=0, threads=1)
args = "" if game == "Pong" else f" {game}"
out = dqn.run(config, scale="cpu", write=False, progress=False,
              command=f"python tools/dqn_pong_2013_rerun.py{args} (the first 200k steps of the committed cpu "
                      f"{game} run of Config.cpu().atari, with diagnostics)")
out["slug"] = f"dqn_{game.lower()}_2013_rerun"
print(results.write(out))
print({k: v for k, v in out["metrics"].items()})
