"""tools/kernel_paths.py: the foreign CPU kernel path (FOREIGN_ENV) must really change the bits.

What must hold depends on the machine's own (native) capability, probed in a clean child process
(the test process itself may run under the foreign variables, e.g. inside `make test`):

* AVX512 (or better): the children report different capabilities, and the matmul (oneDNN), the
  conv2d (oneDNN) and the sigmoid (ATen vectorized) all differ in their bits; the script's
  `--require-difference` exits 0.
* AVX2: ONEDNN_MAX_CPU_ISA=AVX2 cannot lower oneDNN below what the machine already runs, so only
  the capability and the ATen-dispatched sigmoid are asserted to differ.
* DEFAULT: the native path already is the foreign one; nothing can differ, and the test is
  skipped. This is the ONLY case that skips.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tools" / "kernel_paths.py"


def load_module():
    spec = importlib.util.spec_from_file_location("kernel_paths", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


kernel_paths = load_module()


def test_print_env_prints_exactly_the_three_variables():
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--print-env"], capture_output=True, text=True, check=True,
    ).stdout
    assert out.splitlines() == [
        "ATEN_CPU_CAPABILITY=default",
        "MKL_ENABLE_INSTRUCTIONS=AVX2",
        "ONEDNN_MAX_CPU_ISA=AVX2",
    ]
    assert dict(line.split("=", 1) for line in out.splitlines()) == kernel_paths.FOREIGN_ENV


def test_native_env_removes_the_variables_even_when_the_caller_set_them():
    base = {"PATH": "/bin", **kernel_paths.FOREIGN_ENV}
    assert kernel_paths.native_env(base) == {"PATH": "/bin"}
    assert kernel_paths.foreign_env({"PATH": "/bin"}) == base


@pytest.mark.slow
def test_foreign_path_changes_the_bits():
    probe = subprocess.run(
        [sys.executable, "-c", "import torch; print(torch.backends.cpu.get_cpu_capability())"],
        env=kernel_paths.native_env(), capture_output=True, text=True, check=True,
    )
    native = probe.stdout.strip()
    if native == "DEFAULT":
        pytest.skip("this CPU's native kernel path already is DEFAULT: nothing can differ")

    # Run as `make test` would: with the foreign variables already exported by the caller. The
    # script's native child must still get the machine's own path.
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--require-difference"],
        env=kernel_paths.foreign_env(), capture_output=True, text=True, timeout=120,
    )
    out = proc.stdout
    caps = dict(re.findall(r"^(native|foreign) child: +capability (\S+)", out, re.M))
    assert caps == {"native": native, "foreign": "DEFAULT"}, out + proc.stderr
    differ = {
        name: (int(k), int(n))
        for name, k, n in re.findall(r"^(\w+): max \|native - foreign\| = \S+ over \d+ values, "
                                     r"bits differ in (\d+) of (\d+)", out, re.M)
    }
    assert set(kernel_paths.REQUIRED_OPS) <= set(differ), out
    assert "native repeat bit-identical: yes" in out, out
    assert differ["sigmoid"][0] > 0, out
    if native == "AVX2":  # oneDNN already runs AVX2 here: see the module docstring
        return
    for name in kernel_paths.REQUIRED_OPS:
        assert differ[name][0] > 0, f"{name} has identical bits on both paths:\n{out}"
    assert "3 of 3 required ops differ" in out, out
    assert proc.returncode == 0, out + proc.stderr
