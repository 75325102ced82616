"""Training tools shared by the chapters: progress bars, a non-finite guard, checkpoints, a loop.

Plain PyTorch, in the spirit of nanoGPT: nothing here hides the training step.

* :func:`progress`: a ``tqdm.auto`` bar, silenced by ``PAPERNOTES_PROGRESS=0``.
* :func:`check_finite`: raise :class:`NonFiniteLossError` when a loss turns ``nan`` or ``inf``.
* :func:`save_checkpoint` / :func:`load_checkpoint`: atomic writes; loads use
  ``torch.load(..., weights_only=True)`` always, so a checkpoint holds only tensors and plain
  Python values (dicts, lists, tuples, numbers, strings, ``None``).
* :class:`EpochSampler`: the batch indices for any global step, with no mutable state.
* :func:`fit`: the loop. Killed at any moment and started again with the same arguments, it
  resumes from its last checkpoint and ends with the same weights and loss history as a run that
  was never interrupted.

A chapter's ``run(config)`` looks like this::

    seed_everything(config.seed)
    model = Net().to(dev)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=0.9)
    sampler = EpochSampler(len(x), config.batch_size, seed=config.seed)

    def loss_at_step(step):
        idx = torch.from_numpy(sampler.indices(step))
        return F.cross_entropy(model(x[idx].to(dev)), y[idx].to(dev))

    history = fit(model, optimizer, loss_at_step, config.steps,
                  checkpoint_path=checkpoints_dir() / "elu.pt", checkpoint_every=500)
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm as _auto_tqdm
from tqdm.std import tqdm as _std_tqdm

# tqdm.auto picks, once, a notebook widget (in Jupyter with ipywidgets) or a text bar.
_WIDGET = any(cls.__module__ == "tqdm.notebook" for cls in _auto_tqdm.__mro__)

__all__ = [
    "EpochSampler",
    "NonFiniteLossError",
    "check_finite",
    "check_int",
    "fit",
    "load_checkpoint",
    "progress",
    "progress_enabled",
    "save_checkpoint",
]

# --------------------------------------------------------------------------------------------
# Progress bars
# --------------------------------------------------------------------------------------------

_TRUE = ("", "1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def progress_enabled() -> bool:
    """Whether progress bars are shown: ``False`` when ``PAPERNOTES_PROGRESS`` is ``0``.

    ``0``, ``false``, ``no`` and ``off`` (any case) switch bars off; unset, empty, ``1``,
    ``true``, ``yes`` and ``on`` leave them on.

    Raises:
        ValueError: for any other value, rather than guessing what was meant.
    """
    value = os.environ.get("PAPERNOTES_PROGRESS", "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(
        f"PAPERNOTES_PROGRESS={value!r} is not understood: expected 0/false/no/off to hide "
        "progress bars or 1/true/yes/on to show them"
    )


def progress(
    iterable: Iterable | None = None,
    *,
    total: int | float | None = None,
    desc: str | None = None,
    **kw: Any,
) -> _std_tqdm:
    """A ``tqdm.auto`` progress bar over ``iterable`` (or a manual one, updated with ``.update``).

    A widget in Jupyter (when ``ipywidgets`` is installed), text on stderr elsewhere. When
    stderr is not a terminal (CI logs, a notebook without widgets) the text bar redraws at
    most every 10 s instead of ten times a second, so logs stay short.

    Args:
        iterable: what to iterate over; ``None`` for a bar driven by ``bar.update(n)``.
        total: the number of items expected (default ``len(iterable)`` where it has one).
        desc: a short label shown before the bar.
        **kw: any other ``tqdm`` argument (``initial``, ``leave``, ``unit``, ...); they override
            the defaults chosen here.

    Returns:
        The bar; iterating it yields exactly the items of ``iterable``. With
        ``PAPERNOTES_PROGRESS=0`` it is disabled: it still yields the same items, prints nothing.

    Raises:
        ValueError: if ``PAPERNOTES_PROGRESS`` holds a value :func:`progress_enabled` rejects.
    """
    if not progress_enabled():
        kw["disable"] = True
    if not _WIDGET:  # a text bar
        stream = kw.get("file") or sys.stderr
        isatty = getattr(stream, "isatty", None)
        if not (callable(isatty) and isatty()):
            kw.setdefault("mininterval", 10.0)
    kw.setdefault("dynamic_ncols", True)
    return _auto_tqdm(iterable, total=total, desc=desc, **kw)


# --------------------------------------------------------------------------------------------
# Non-finite guard
# --------------------------------------------------------------------------------------------


class NonFiniteLossError(RuntimeError):
    """The loss became ``nan`` or ``inf``; ``.step`` and ``.value`` say where and what."""

    def __init__(self, step: int, value: float) -> None:
        self.step = step
        self.value = value
        super().__init__(
            f"loss became {value} at step {step}; lower the learning rate or check the input"
        )


def check_finite(loss: torch.Tensor | float, step: int) -> float:
    """Return the loss as a float, or raise if it is ``nan``, ``inf`` or ``-inf``.

    On a GPU this waits for the loss to be computed (one synchronisation per call).

    Args:
        loss: a one-element tensor or a Python/NumPy number.
        step: the global step the loss belongs to, named in the error.

    Returns:
        ``float(loss)``.

    Raises:
        NonFiniteLossError: if the loss is not finite; its message names ``step`` and the value.
        TypeError: if ``loss`` is neither a tensor nor a real number.
        ValueError: if ``loss`` is a tensor with more than one element.
    """
    if isinstance(loss, torch.Tensor):
        if loss.numel() != 1:
            raise ValueError(
                f"loss must be a one-element tensor, got shape {tuple(loss.shape)} at step {step}"
            )
        value = float(loss.detach().item())
    elif isinstance(loss, (int, float, np.integer, np.floating)) and not isinstance(loss, bool):
        value = float(loss)
    else:
        raise TypeError(f"loss must be a tensor or a real number, got {type(loss).__name__}")
    if not math.isfinite(value):
        raise NonFiniteLossError(step, value)
    return value


# --------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------

_SAFE_LEAVES = (str, bytes, int, float, bool, complex, type(None), torch.dtype, torch.device)
_SAFE_CONTAINERS = (dict, OrderedDict, list, tuple, set)


def _registered_safe_types() -> tuple[type, ...]:
    """Classes the user allowed with ``torch.serialization.add_safe_globals`` (torch >= 2.4)."""
    getter = getattr(torch.serialization, "get_safe_globals", None)
    if getter is None:
        return ()
    found = []
    for entry in getter():
        cls = entry[0] if isinstance(entry, tuple) else entry
        if isinstance(cls, type):
            found.append(cls)
    return tuple(found)


def _check_weights_only_safe(obj: Any, where: str, extra: tuple[type, ...]) -> None:
    """Raise ``TypeError`` naming the first value ``torch.load(weights_only=True)`` would refuse."""
    if isinstance(obj, (torch.Tensor, torch.Size)) or type(obj) in _SAFE_LEAVES:
        return
    if type(obj) in _SAFE_CONTAINERS:
        if isinstance(obj, dict):
            for key, value in obj.items():
                _check_weights_only_safe(key, f"{where} key {key!r}", extra)
                _check_weights_only_safe(value, f"{where}[{key!r}]", extra)
        else:
            for i, value in enumerate(obj):
                _check_weights_only_safe(value, f"{where}[{i}]", extra)
        return
    if extra and isinstance(obj, extra):
        return
    hint = ""
    if type(obj).__module__ == "numpy":
        hint = " (use float(x) / int(x) / torch.from_numpy(x))"
    raise TypeError(
        f"checkpoint state {where} is a {type(obj).__module__}.{type(obj).__qualname__}, which "
        "torch.load(weights_only=True) refuses: a checkpoint may hold only tensors, dicts, lists, "
        f"tuples, sets, str, bytes, numbers, bools and None{hint}"
    )


def save_checkpoint(path: str | os.PathLike, state: Mapping[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically: a kill mid-write never leaves a corrupt file.

    The state goes with ``torch.save`` to a temporary file in the same folder, which is flushed
    and fsync'd, then renamed over ``path`` with ``os.replace``. At every moment ``path`` is
    either the previous checkpoint or the new one, whole. Parent folders are created.

    Args:
        path: the checkpoint file.
        state: a dict of tensors and plain Python values (dicts, lists, tuples, sets, str,
            bytes, numbers, bools, ``None``), since :func:`load_checkpoint` loads with
            ``weights_only=True``. ``model.state_dict()``, ``optimizer.state_dict()``, the
            built-in LR schedulers' ``state_dict()`` and ``torch.get_rng_state()`` all qualify.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        TypeError: if ``state`` is not a dict, or holds a value that could not be loaded back
            with ``weights_only=True`` (the message names where); nothing is written then.
        OSError: if the file cannot be written; the previous checkpoint, if any, is untouched
            and no temporary file is left behind.
    """
    if not isinstance(state, Mapping):
        raise TypeError(f"state must be a dict, got {type(state).__name__}")
    state = dict(state)
    _check_weights_only_safe(state, "state", _registered_safe_types())
    return write_atomic(path, lambda f: torch.save(state, f))


def write_atomic(path: str | os.PathLike, write: Callable[[Any], None]) -> Path:
    """Write a file atomically: ``write(f)`` fills a temporary file (binary mode) in the same
    folder, which is flushed, fsync'd and renamed over ``path``. At every moment ``path`` is the
    previous file or the new one, whole; on any error the temporary file is removed and the
    previous file is untouched. Parent folders are created. Returns ``path`` as a ``Path``.
    Checkpoints, cached evaluations and sample archives all go through it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)
    return path


def unit_cache_path(folder: str | os.PathLike, label: str, key: Mapping[str, Any]) -> Path:
    """Where one unit of a study (one trained model's numbers) is cached:
    ``<folder>/<label>-<first 12 hex digits of the SHA-256 of key as sorted JSON>.json``, so that
    any change of a setting in ``key`` gives a new file."""
    import hashlib
    import json

    digest = hashlib.sha256(json.dumps(dict(key), sort_keys=True).encode()).hexdigest()[:12]
    return Path(folder) / f"{label}-{digest}.json"


def cached_json(path: str | os.PathLike, compute: Callable[[], Any]) -> Any:
    """The JSON stored at ``path`` if it is there, else ``compute()``, stored there atomically
    (:func:`write_atomic`) and returned. How a study split over processes is gathered by one
    more run that computes nothing."""
    import json

    path = Path(path)
    if path.is_file():
        return json.loads(path.read_text())
    out = compute()
    write_atomic(path, lambda f: f.write(json.dumps(out).encode()))
    return out


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where folders cannot be opened."""
    try:
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def load_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device | None = None
) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`, always with ``weights_only=True``.

    ``weights_only`` means loading never runs code from the file: only tensors and plain Python
    values come back.

    Args:
        path: the checkpoint file.
        map_location: where tensors go, as for ``torch.load``: ``None`` puts them back on the
            device they were saved from, ``"cpu"`` loads a GPU checkpoint on a machine without
            one. :func:`fit` loads onto the CPU and lets ``load_state_dict`` move the tensors.

    Returns:
        The state dict.

    Raises:
        FileNotFoundError: if there is no file at ``path`` (the message names it).
        pickle.UnpicklingError: if the file holds anything but tensors and plain values.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    state = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(state, dict):
        raise TypeError(f"checkpoint {path} holds a {type(state).__name__}, not a state dict")
    return state


# --------------------------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------------------------


def check_int(name: str, value: Any, minimum: int) -> int:
    """``value`` as an int if it is one (not a bool) and at least ``minimum``; else a
    ``TypeError``/``ValueError`` that names ``name``, what was expected and what came."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


class EpochSampler:
    """The indices of the batch for any global step, computed rather than remembered.

    Epoch ``e`` is the permutation ``np.random.default_rng([seed, e]).permutation(n)`` cut into
    batches; step ``s`` is batch ``s % steps_per_epoch`` of epoch ``s // steps_per_epoch``. The
    sampler holds no random state, so a resumed run needs nothing but the step to get the very
    same batches.

    Args:
        n: the number of examples (>= 1).
        batch_size: examples per batch (>= 1).
        seed: a non-negative int; the same seed gives the same batches.
        drop_last: drop each epoch's last, smaller batch (then ``batch_size <= n`` is required).
            Without it the last batch of an epoch holds the ``n % batch_size`` examples left.

    Raises:
        TypeError: if an argument is not an int (``drop_last``: not a bool).
        ValueError: if ``n < 1``, ``batch_size < 1``, ``seed < 0``, or ``drop_last`` with
            ``batch_size > n`` (an epoch would have no batch at all).
    """

    def __init__(self, n: int, batch_size: int, seed: int, drop_last: bool = False) -> None:
        self.n = check_int("n", n, 1)
        self.batch_size = check_int("batch_size", batch_size, 1)
        self.seed = check_int("seed", seed, 0)
        if not isinstance(drop_last, bool):
            raise TypeError(f"drop_last must be a bool, got {type(drop_last).__name__}")
        if drop_last and self.batch_size > self.n:
            raise ValueError(
                f"batch_size={self.batch_size} is larger than n={self.n} with drop_last=True: "
                "every batch would be dropped"
            )
        self.drop_last = drop_last
        if drop_last:
            self.steps_per_epoch = self.n // self.batch_size
        else:
            self.steps_per_epoch = -(-self.n // self.batch_size)
        self._cached: tuple[int, np.ndarray] | None = None  # (epoch, permutation): a pure cache

    def __repr__(self) -> str:
        return (
            f"EpochSampler(n={self.n}, batch_size={self.batch_size}, seed={self.seed}, "
            f"drop_last={self.drop_last})"
        )

    def epoch(self, step: int) -> int:
        """The epoch global step ``step`` falls in: ``step // steps_per_epoch``.

        Raises:
            TypeError / ValueError: if ``step`` is not an int >= 0.
        """
        return check_int("step", step, 0) // self.steps_per_epoch

    def permutation(self, epoch: int) -> np.ndarray:
        """The order of all ``n`` indices in ``epoch``: a permutation of ``0 .. n-1`` (int64).

        Raises:
            TypeError / ValueError: if ``epoch`` is not an int >= 0.
        """
        epoch = check_int("epoch", epoch, 0)
        if self._cached is None or self._cached[0] != epoch:
            perm = np.random.default_rng([self.seed, epoch]).permutation(self.n).astype(np.int64)
            perm.flags.writeable = False
            self._cached = (epoch, perm)
        return self._cached[1]

    def indices(self, step: int) -> np.ndarray:
        """The example indices of global step ``step`` (a new int64 array).

        Raises:
            TypeError / ValueError: if ``step`` is not an int >= 0.
        """
        step = check_int("step", step, 0)
        epoch, i = divmod(step, self.steps_per_epoch)
        start = i * self.batch_size
        return self.permutation(epoch)[start : start + self.batch_size].copy()


# --------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------


def _rng_state() -> dict[str, Any]:
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    return {"cpu": torch.get_rng_state(), "cuda": list(cuda)}


def _set_rng_state(rng: Mapping[str, Any]) -> None:
    torch.set_rng_state(rng["cpu"].cpu())
    cuda = list(rng.get("cuda", []))
    if not cuda:
        return
    here = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if here == len(cuda):
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda])
    else:
        warnings.warn(
            f"the checkpoint holds the RNG state of {len(cuda)} GPU(s) but this machine has "
            f"{here}; GPU randomness will not continue where it left off",
            RuntimeWarning,
            stacklevel=3,
        )


def fit(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_at_step: Callable[[int], torch.Tensor],
    num_steps: int,
    *,
    checkpoint_path: str | os.PathLike | None = None,
    checkpoint_every: int = 0,
    scheduler: Any | None = None,
    clip_grad_norm: float | None = None,
    log_every: int = 1,
    on_log: Callable[[int, float], None] | None = None,
    desc: str = "train",
    show_progress: bool = True,
) -> list[tuple[int, float]]:
    """Train for ``num_steps`` steps, resuming from ``checkpoint_path`` if it exists.

    Each step ``step`` (0, 1, ..., ``num_steps - 1``) does: ``model.train()``, zero the
    gradients, ``loss = loss_at_step(step)``, :func:`check_finite`, ``loss.backward()``,
    optionally clip the gradient norm, ``optimizer.step()``, ``scheduler.step()``. Every
    ``log_every`` steps (and at the last step) ``(step, loss)`` joins the history and
    ``on_log(step, loss)`` is called. Every ``checkpoint_every`` steps, and at the end, the
    checkpoint is written atomically with the model, optimizer and scheduler state, the number
    of steps done, the history and torch's RNG state (CPU and every GPU).

    Started again after a crash or a kill, with the same arguments, it loads the checkpoint,
    restores all that (RNG included, so dropout draws the same masks) and goes on from the step
    saved; on the CPU the end result is bit-for-bit that of an uninterrupted run (on a GPU,
    non-deterministic kernels can make the last bits differ in either run). Started again
    after it finished, it does nothing and returns the history. For this to hold:

    * ``loss_at_step`` must depend only on ``step`` and on state the checkpoint holds: take
      batches from an :class:`EpochSampler` (or any pure function of ``step``), and draw random
      numbers from torch's global generator only, not from NumPy's or ``random``'s;
    * build the model and optimizer the same way in both runs (the checkpoint overwrites their
      values, not their structure).

    Args:
        model: the module trained; put in train mode before every step.
        optimizer: its optimizer.
        loss_at_step: ``step -> scalar loss tensor`` for global step ``step``.
        num_steps: the total number of steps, counting those done before a resume.
        checkpoint_path: the checkpoint file; ``None`` trains without saving or resuming.
        checkpoint_every: save every this many steps (0: only at the end).
        scheduler: an LR scheduler stepped once per step, or ``None``.
        clip_grad_norm: if given, clip the gradients' global norm to it before each step.
        log_every: record the loss every this many steps (and always at the last step).
        on_log: called as ``on_log(step, loss)`` whenever the loss is recorded.
        desc: the progress bar's label.
        show_progress: ``False`` hides this loop's bar (for a caller that shows its own,
            e.g. one bar over many short ``fit`` calls).

    Returns:
        The history, ``[(step, loss), ...]``, including the steps done before a resume.

    Raises:
        NonFiniteLossError: if a loss is ``nan`` or ``inf``; the step is not taken and the last
            checkpoint is left as it was.
        ValueError: for a bad argument, or a checkpoint that does not match this run (saved
            beyond ``num_steps``, or with a scheduler when none is given, or the reverse).
        TypeError: if an argument has the wrong type.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(
            f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}"
        )
    if not callable(loss_at_step):
        raise TypeError(f"loss_at_step must be callable, got {type(loss_at_step).__name__}")
    num_steps = check_int("num_steps", num_steps, 0)
    checkpoint_every = check_int("checkpoint_every", checkpoint_every, 0)
    log_every = check_int("log_every", log_every, 1)
    if checkpoint_every and checkpoint_path is None:
        raise ValueError(f"checkpoint_every={checkpoint_every} needs a checkpoint_path")
    if clip_grad_norm is not None and not clip_grad_norm > 0:
        raise ValueError(f"clip_grad_norm must be > 0 or None, got {clip_grad_norm}")

    def state(step: int) -> dict[str, Any]:
        return {
            "step": step,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": None if scheduler is None else scheduler.state_dict(),
            "history": [(s, v) for s, v in history],
            "rng": _rng_state(),
        }

    start, history = 0, []
    path = None if checkpoint_path is None else Path(checkpoint_path)
    if path is not None and path.exists():
        saved = load_checkpoint(path, map_location="cpu")
        start = int(saved["step"])
        if start > num_steps:
            raise ValueError(
                f"checkpoint {path} is at step {start}, beyond num_steps={num_steps}: "
                "delete it or raise num_steps"
            )
        if (saved["scheduler"] is None) != (scheduler is None):
            has = "without" if saved["scheduler"] is None else "with"
            raise ValueError(
                f"checkpoint {path} was saved {has} a scheduler, but this run has "
                f"{'one' if scheduler is not None else 'none'}"
            )
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(saved["scheduler"])
        history = [(int(s), float(v)) for s, v in saved["history"]]
        _set_rng_state(saved["rng"])
        if start == num_steps:
            return history

    last_saved = start
    bar = progress(range(start, num_steps), total=num_steps, initial=start, desc=desc,
                   disable=not show_progress)
    for step in bar:
        model.train()
        optimizer.zero_grad(set_to_none=True)
        loss = loss_at_step(step)
        value = check_finite(loss, step)
        loss.backward()
        if clip_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        if step % log_every == 0 or step == num_steps - 1:
            history.append((step, value))
            bar.set_postfix(loss=f"{value:.4g}", refresh=False)
            if on_log is not None:
                on_log(step, value)
        if checkpoint_every and (step + 1) % checkpoint_every == 0 and path is not None:
            save_checkpoint(path, state(step + 1))
            last_saved = step + 1
    bar.close()
    if path is not None and last_saved != num_steps:
        save_checkpoint(path, state(num_steps))
    return history
