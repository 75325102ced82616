r"""Batched segment inference against segment-by-segment decoding, in bytes per second.

A text is cut into overlapping segments of ``k`` bytes that the model reads independently, so
:func:`papernotes_core.byte_to_span.predict` decodes all the segments of all the texts together,
``batch`` at a time (one LSTM step advances every unfinished segment). The peer is the same
function with ``batched=False``: one segment at a time, each stopping at its own STOP, which is
how the paper's Fig. 1 reads. Both decode the same validation sentences (English, Turkish,
Japanese) with the same model and give the same spans (checked); the ratio is what batching
buys.

The model is the chapter's ``cpu`` configuration trained for ``train_steps`` updates first, so
that it emits realistic output sequences (an untrained network rarely emits STOP, and every
segment would run to the step limit). Timings are interleaved (:func:`benchmarks.harness.interleaved_medians`).

Writes ``results/bench/byte_to_span.json``: ``metrics.batched_speedup`` (batched bytes/s over
segment-by-segment bytes/s, median over repeats) with its 25th-75th percentiles,
``metrics.batched_bytes_per_s``, ``metrics.sequential_bytes_per_s``, ``metrics.segments``,
``metrics.bytes``.
"""

from __future__ import annotations

import random
import statistics
import time

import torch
import torch.nn.functional as F

from benchmarks.harness import interleaved_medians
from papernotes_core import results, runtime
from papernotes_core import byte_to_span as bts
from papernotes_core.byte_to_span.spans import OutputVocab

NAME = "byte_to_span"


def _trained_model(config: bts.Config, corpora, steps: int, dev):
    runtime.seed_everything(0)
    vocab = OutputVocab(config.k, bts.labels_for(corpora))
    train = [s for lang in corpora for s in bts.make_segments(corpora[lang]["train"], vocab, config.stride)]
    model = bts.build_model(config, vocab, dev)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    done = 0
    while done < steps:
        for x, lengths, y_in, y_out in bts.batches(train, config.batch_size, config.k, random.Random(done)):
            logits = model(x.to(dev), lengths, y_in.to(dev))
            loss = F.cross_entropy(logits.reshape(-1, vocab.size), y_out.to(dev).reshape(-1), ignore_index=-100)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip)
            opt.step()
            done += 1
            if done >= steps:
                break
    return model.eval(), vocab


def run(write: bool = True, sentences_per_lang: int = 40, train_steps: int = 300, repeats: int = 5,
        threads: int | None = 1) -> dict:
    """Time batched against segment-by-segment decoding on ``sentences_per_lang`` validation
    sentences of each language; return (and with ``write``, write) the results."""
    for name, v in (("sentences_per_lang", sentences_per_lang), ("train_steps", train_steps),
                    ("repeats", repeats)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    if threads is not None:
        runtime.set_threads(threads)
    start = time.perf_counter()
    dev = runtime.device()
    config = bts.Config.cpu()
    corpora = bts.load_corpora(config)
    model, vocab = _trained_model(config, corpora, train_steps, dev)
    texts = [s for lang in corpora for s in corpora[lang]["val"][:sentences_per_lang]]
    n_bytes = sum(len(t.data) for t in texts)
    out = {}

    def batched():
        out["batched"] = bts.predict(model, vocab, texts, config.stride, batch=config.eval_batch, batched=True)

    def sequential():
        out["sequential"] = bts.predict(model, vocab, texts, config.stride, batched=False)

    times = interleaved_medians({"batched": batched, "sequential": sequential}, repeats=repeats, inner=1,
                                warmup=1)
    if out["batched"] != out["sequential"]:
        raise AssertionError("batched and segment-by-segment decoding gave different spans")
    per_repeat = [s / b for b, s in zip(times["batched"], times["sequential"])]
    q = statistics.quantiles(per_repeat, n=4)
    b_s, s_s = statistics.median(times["batched"]), statistics.median(times["sequential"])
    metrics = {"batched_speedup": s_s / b_s, "batched_speedup_q25": q[0], "batched_speedup_q75": q[2],
               "batched_bytes_per_s": n_bytes / b_s, "sequential_bytes_per_s": n_bytes / s_s,
               "segments": float(out["batched"][1]), "bytes": float(n_bytes)}
    data = {
        "slug": NAME, "scale": "bench", "metrics": metrics,
        "curves": {"batched_s": [[i, t] for i, t in enumerate(times["batched"])],
                   "sequential_s": [[i, t] for i, t in enumerate(times["sequential"])]},
        "paper": {},
        "provenance": results.provenance(
            {"model": {f: getattr(config, f) for f in ("k", "stride", "embed", "hidden", "layers",
                                                        "reverse_input")},
             "train_steps": train_steps, "sentences_per_lang": sentences_per_lang, "repeats": repeats,
             "batch": config.eval_batch, "ours": "byte_to_span.predict(batched=True)",
             "peer": "byte_to_span.predict(batched=False): one segment at a time",
             "threads": torch.get_num_threads()},
            [0], wall_s=time.perf_counter() - start, device=str(dev), command=f"python -m benchmarks {NAME}"),
    }
    data = results.validate(data)
    if write:
        results.write(data)
    return data
