"""`python -m benchmarks [name ...]`: run the benchmarks and write results/bench/<name>.json."""

import importlib
import pkgutil
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    here = Path(__file__).parent
    available = sorted(m.name[len("bench_"):] for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))
    wanted = argv or available
    unknown = sorted(set(wanted) - set(available))
    if unknown:
        print(f"unknown benchmarks {unknown}; available: {available}", file=sys.stderr)
        return 2
    for name in wanted:
        module = importlib.import_module(f"benchmarks.bench_{name}")
        m = module.run()["metrics"]
        if "ours_s" in m:
            print(f"{name:12s} ours {m['ours_s'] * 1e3:8.3f} ms  peer {m['peer_s'] * 1e3:8.3f} ms  "
                  f"ratio {m['ratio']:.2f} (IQR {m['ratio_q25']:.2f}-{m['ratio_q75']:.2f})")
        else:
            print(f"{name:12s} " + "  ".join(f"{k} {v:.4g}" for k, v in sorted(m.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
