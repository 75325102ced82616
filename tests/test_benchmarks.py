import time

import pytest

from benchmarks import harness


def test_time_call_measures_per_call_seconds():
    t = harness.time_call(lambda: time.sleep(0.01), inner=3)
    assert 0.009 < t < 0.5   # the upper bound is loose: a loaded machine deschedules a sleeping thread
    with pytest.raises(ValueError):
        harness.time_call(lambda: None, inner=0)


def test_interleaving_rotates_and_counts():
    calls = []
    times = harness.interleaved_medians({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                                        repeats=4, inner=1, warmup=0)
    assert calls == ["a", "b", "b", "a", "a", "b", "b", "a"]
    assert len(times["a"]) == len(times["b"]) == 4
    with pytest.raises(ValueError):
        harness.interleaved_medians({"a": lambda: None}, repeats=2)


def test_ratio_benchmark_ratio_reflects_the_slower_candidate(tmp_path, monkeypatch):
    monkeypatch.setenv("PAPERNOTES_RESULTS_OUT", str(tmp_path))
    out = harness.ratio_benchmark("toy", lambda: time.sleep(0.004), lambda: time.sleep(0.002), peer_name="sleep",
                                  config={}, repeats=3, inner=2)
    assert 1.3 < out["metrics"]["ratio"] < 3.0
    assert (tmp_path / "bench" / "toy.json").is_file()


def test_elu_benchmark_runs(tmp_path, monkeypatch):
    from benchmarks import bench_elu

    out = bench_elu.run(write=False, n=1000)
    assert out["metrics"]["ratio"] > 0 and out["provenance"]["config"]["peer"] == "torch.nn.functional.elu"


def test_parzen_benchmark_runs_and_agrees_with_the_authors_formulation():
    from benchmarks import bench_parzen

    out = bench_parzen.run(write=False, n=300, m=200, d=20, peer_points=20)
    m = out["metrics"]
    assert m["eval_seconds"] > 0 and m["sigma_search_seconds"] > 0
    assert 0 < m["baseline_gb"] <= m["peak_gb"] < 4
    assert m["max_abs_diff_vs_peer"] < 1e-8
    assert out["provenance"]["config"]["samples"] == 300


def test_dqn_benchmark_runs_in_process():
    from benchmarks import bench_dqn

    out = bench_dqn.run(write=False, repeats=3, learning_starts=64, timed_steps=64, fill=2_000, buffer_size=2_000,
                        device="cpu", isolate=False)
    m = out["metrics"]
    for key in ("steps_per_s_ratio_vs_sb3", "ours_steps_per_s", "sb3_steps_per_s", "replay_gb_at_1m",
                "sb3_replay_gb_at_1m", "sb3_replay_gb_at_1m_optimized"):
        assert m[key] > 0, key
    # in-process, freed memory may be reused, so the resident-memory increases are only present
    assert {"replay_rss_gb_100k", "sb3_replay_rss_gb_100k", "sb3_replay_rss_gb_100k_optimized"} <= set(m)
    assert m["replay_gb_at_1m"] <= 7.5 and m["replay_bytes_per_transition"] == 7071
    assert m["sb3_replay_gb_at_1m"] > m["sb3_replay_gb_at_1m_optimized"] > 7.5
    assert m["steps_per_s_ratio_q25"] <= m["steps_per_s_ratio_q75"]
    assert len(out["curves"]["ours_steps_per_s"]) == 3
    # Where our time goes: the parts add up to the whole, and the network is most of it.
    assert m["network_ms_per_step"] == pytest.approx(m["update_ms_per_step"] + m["act_ms_per_step"], rel=0.05)
    for run in out["provenance"]["config"]["runs"]["ours"]:
        assert run["ms_per_step"] == pytest.approx(
            run["network_ms_per_step"] + run["emulator_ms_per_step"] + run["other_ms_per_step"])
        assert 0 < run["emulator_ms_per_step"] and 0 < run["other_ms_per_step"] < run["ms_per_step"]
        assert run["update_ms"] > 0 and run["non_network_ms_per_step"] == pytest.approx(
            run["ms_per_step"] - run["network_ms_per_step"])


def test_rnn_dropout_benchmark_runs():
    from benchmarks import bench_rnn_dropout

    out = bench_rnn_dropout.run(write=False, sizes=("small",), windows_per_call=1, repeats=3)
    m = out["metrics"]
    assert m["tokens_per_s_ratio_vs_peer.small"] > 0 and m["ours_tokens_per_s.small"] > 0
    assert out["provenance"]["config"]["sizes"] == ["small"]


def test_translation_matrix_benchmark_runs_single_threaded():
    from benchmarks import bench_translation_matrix

    out = bench_translation_matrix.run(write=False, repeats=2, epochs=1, n_queries=100)
    m = out["metrics"]
    assert m["n_queries"] == 100 and m["n_targets"] > 5000
    assert m["retrieval_speedup_vs_loop"] > 1 and 0 < m["ann_recall_at_5"] <= 1
    assert out["provenance"]["config"]["threads"]["OMP_NUM_THREADS"] == "1"


def test_byte_to_span_benchmark_runs_and_both_paths_agree():
    from benchmarks import bench_byte_to_span

    out = bench_byte_to_span.run(write=False, sentences_per_lang=3, train_steps=5, repeats=3)
    m = out["metrics"]
    assert m["segments"] >= 9 and m["bytes"] > 0
    assert m["batched_speedup"] == pytest.approx(m["batched_bytes_per_s"] / m["sequential_bytes_per_s"])
    assert m["batched_speedup_q25"] <= m["batched_speedup_q75"]
    with pytest.raises(ValueError, match="train_steps must be a positive int"):
        bench_byte_to_span.run(write=False, train_steps=0)
