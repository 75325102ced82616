"""Show that the "foreign" CPU kernel path really changes floating-point bits.

The notebook tests run with `FOREIGN_ENV` (below) set before torch is imported, so that a test
run never repeats the exact bits of the machine that produced the committed outputs. This script
proves the point on the current machine: it runs the same deterministic float32 computations in
child processes on the native path (the three variables removed from the environment, even when
the caller exported them) and on the foreign path (the three variables set), passes the results
back as .npy files in a temporary folder, and compares them bit for bit.

    python tools/kernel_paths.py                       # report; exit 0 either way
    python tools/kernel_paths.py --require-difference  # exit 1 unless all three ops differ
    python tools/kernel_paths.py --print-env           # NAME=value lines, for the Makefile:
                                                       #   env $$(python tools/kernel_paths.py --print-env) ...

The three required ops were chosen because they differ on an AVX-512 machine (measured on an AMD
EPYC with torch 2.13 CPU, MKL 2024.0, oneDNN 3.12):
  matmul   oneDNN's brgemm matmul (mkldnn_linear), 64x32768 @ 32768x64 on 2 threads: oneDNN splits
           the long reduction across threads, and the split differs between its avx512_core and
           avx2 kernels. One thread, or shapes without a K split, give identical bits.
  conv2d   torch.nn.functional.conv2d (oneDNN jit kernel; ONEDNN_MAX_CPU_ISA changes its blocking).
  sigmoid  an ATen vectorized kernel, selected by ATEN_CPU_CAPABILITY.
Informational ops, which do not decide the exit status, show what may NOT change: `torch.matmul`
goes to MKL sgemm, and MKL does not use AVX-512 on AMD CPUs, so MKL_ENABLE_INSTRUCTIONS=AVX2
changes nothing there; `torch.exp` goes to MKL's vector math library, likewise. `torch.randn` (a
seeded generator) does change, because its normal sampling is a vectorized ATen kernel.

Inputs come from numpy's seeded generator in the parent, so both children see identical bits. The
native child runs twice to show that the computations are deterministic; with
--require-difference a non-reproducible native result also fails (a difference would prove
nothing). Uses only the standard library, numpy and (in the children) torch.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# The one place that defines the foreign kernel path (they must be set before torch is imported).
FOREIGN_ENV = {
    "ATEN_CPU_CAPABILITY": "default",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
}

REQUIRED_OPS = ("matmul", "conv2d", "sigmoid")
INFO_OPS = ("matmul_mkl", "exp", "randn")
DESCRIPTIONS = {
    "matmul": "oneDNN brgemm matmul, 64x32768 @ 32768x64, 2 threads",
    "conv2d": "conv2d 8x16x32x32, 32 filters 3x3, padding 1",
    "sigmoid": "torch.sigmoid on 1,000,000 values",
    "matmul_mkl": "torch.matmul (MKL sgemm), 257x1031 @ 1031x263",
    "exp": "torch.exp (MKL VML) on 1,000,000 values",
    "randn": "torch.manual_seed(0); torch.randn(100000)",
}
CHILD_THREADS = 2  # oneDNN splits the matmul's reduction only with more than one thread
SEED = 20240601


def native_env(base=None) -> dict[str, str]:
    """`base` (default: os.environ) with the foreign variables removed: the machine's own path."""
    env = dict(os.environ if base is None else base)
    for name in FOREIGN_ENV:
        env.pop(name, None)
    return env


def foreign_env(base=None) -> dict[str, str]:
    """`base` (default: os.environ) with the foreign variables set."""
    return {**(os.environ if base is None else base), **FOREIGN_ENV}


def make_inputs(folder: Path) -> None:
    import numpy as np

    rng = np.random.default_rng(SEED)
    shapes = {
        "mm_a": (64, 32768), "mm_b": (64, 32768),            # out = mm_a @ mm_b.T
        "mkl_a": (257, 1031), "mkl_b": (1031, 263),
        "conv_x": (8, 16, 32, 32), "conv_w": (32, 16, 3, 3), "conv_b": (32,),
        "elt_x": (1_000_000,),
    }
    for name, shape in shapes.items():
        np.save(folder / f"{name}.npy", rng.standard_normal(shape, dtype=np.float32))


def child(inputs: Path, out: Path) -> None:
    """Runs in a child process: compute every op and save the results as .npy files."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(CHILD_THREADS)
    t = {p.stem: torch.from_numpy(np.load(p)) for p in inputs.glob("*.npy")}
    capability = torch.backends.cpu.get_cpu_capability()
    print(f"capability: {capability}", flush=True)
    (out / "capability.txt").write_text(capability, encoding="utf-8")
    with torch.no_grad():
        if torch.backends.mkldnn.is_available():
            mm = torch._C._nn.mkldnn_linear(t["mm_a"].to_mkldnn(), t["mm_b"].to_mkldnn()).to_dense()
        else:  # a build without oneDNN: the best we can do
            mm = t["mm_a"] @ t["mm_b"].T
        results = {
            "matmul": mm,
            "conv2d": F.conv2d(t["conv_x"], t["conv_w"], t["conv_b"], padding=1),
            "sigmoid": torch.sigmoid(t["elt_x"]),
            "matmul_mkl": t["mkl_a"] @ t["mkl_b"],
            "exp": torch.exp(t["elt_x"]),
        }
        torch.manual_seed(0)
        results["randn"] = torch.randn(100_000)
    for name, value in results.items():
        np.save(out / f"{name}.npy", value.contiguous().numpy())


def run_children(children: dict[str, dict[str, str]], inputs: Path, tmp: Path) -> dict[str, str]:
    """Start one child per {label: environment} at once (importing torch dominates the run time;
    each child fixes its own thread count, so running them side by side cannot change the bits);
    return {label: capability}, after writing each child's results to tmp/label/."""
    procs = {}
    for label, env in children.items():
        (tmp / label).mkdir()
        procs[label] = subprocess.Popen(
            [sys.executable, __file__, "--child", str(inputs), str(tmp / label)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
    caps = {}
    for label, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=300)
        if proc.returncode != 0:
            sys.exit(f"kernel_paths: {label} child failed ({proc.returncode}):\n{stdout}{stderr}")
        caps[label] = (tmp / label / "capability.txt").read_text(encoding="utf-8").strip()
    return caps


def compare(a, b) -> tuple[float, int, int]:
    """(max |a - b|, number of values whose bits differ, number of values)."""
    import numpy as np

    assert a.dtype == b.dtype == np.float32 and a.shape == b.shape
    bits_a, bits_b = a.view(np.uint32), b.view(np.uint32)
    differ = 0 if np.array_equal(bits_a, bits_b) else int(np.count_nonzero(bits_a != bits_b))
    return float(np.max(np.abs(a.astype(np.float64) - b))), differ, a.size


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--print-env", action="store_true",
                        help="print the foreign variables as NAME=value lines and exit")
    parser.add_argument("--require-difference", action="store_true",
                        help="exit 1 unless all three required ops differ in their bits")
    parser.add_argument("--child", nargs=2, metavar=("INPUTS", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.print_env:
        for name, value in FOREIGN_ENV.items():
            print(f"{name}={value}")
        return 0
    if args.child:
        child(Path(args.child[0]), Path(args.child[1]))
        return 0

    import numpy as np

    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="kernel_paths-") as tmp:
        tmp = Path(tmp)
        (tmp / "inputs").mkdir()
        make_inputs(tmp / "inputs")
        foreign_vars = " ".join(f"{k}={v}" for k, v in FOREIGN_ENV.items())
        caps = run_children(
            {"native": native_env(), "foreign": foreign_env(), "native2": native_env()},
            tmp / "inputs", tmp,
        )
        print(f"native child:  capability {caps['native']} ({', '.join(FOREIGN_ENV)} removed)")
        print(f"foreign child: capability {caps['foreign']} ({foreign_vars})")
        differs, repeat_ok = {}, True
        for name in REQUIRED_OPS + INFO_OPS:
            if name == INFO_OPS[0]:
                print("informational (not required):")
            nat, fgn = np.load(tmp / "native" / f"{name}.npy"), np.load(tmp / "foreign" / f"{name}.npy")
            rep = np.load(tmp / "native2" / f"{name}.npy")
            repeat_ok &= np.array_equal(nat.view(np.uint32), rep.view(np.uint32))
            biggest, k, n = compare(nat, fgn)
            differs[name] = k > 0
            print(f"{name}: max |native - foreign| = {biggest:.2g} over {n} values, "
                  f"bits differ in {k} of {n}  [{DESCRIPTIONS[name]}]")
    required = [name for name in REQUIRED_OPS if differs[name]]
    unchanged = [name for name in REQUIRED_OPS + INFO_OPS if not differs[name]]
    ok = len(required) == len(REQUIRED_OPS) and repeat_ok
    print(f"native repeat bit-identical: {'yes' if repeat_ok else 'NO (results are not deterministic)'}")
    print(f"summary: capability {caps['native']} -> {caps['foreign']}; "
          f"{len(required)} of {len(REQUIRED_OPS)} required ops differ"
          f" ({', '.join(required) or 'none'}); identical bits: {', '.join(unchanged) or 'none'}; "
          f"{time.monotonic() - start:.1f} s")
    return 1 if args.require_difference and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
