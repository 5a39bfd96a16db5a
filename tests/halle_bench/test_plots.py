"""The figures show what they claim: the plotted data equals the tables'."""

from __future__ import annotations

import numpy as np
import pytest
from runfixtures import make_run

from halle_bench.report import load_runs, merge_leaderboards, merge_positional, merge_utterances
from halle_bench.plots import (plot_rtf_vs_length, plot_sim_quality, plot_wer_by_bucket, plot_wer_by_position,
                               save_plots)


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    runs = load_runs([make_run(tmp_path_factory.mktemp("p") / "run", seed=0, audio=False)])
    return merge_leaderboards(runs), merge_utterances(runs), merge_positional(runs)


def test_wer_by_bucket_plots_the_leaderboard(tables):
    lb, _, _ = tables
    fig = plot_wer_by_bucket(lb)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["3-10 s", "10-30 s", "30-60 s", "60-90 s"]
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    assert list(lines) == ["gt", "valle", "halle"]
    for s, ln in lines.items():
        want = lb[(lb.system == s) & (lb.bucket != "all")].wer.to_numpy() * 100
        np.testing.assert_allclose(ln.get_ydata(), want)
    assert len(ax.collections) == 3  # one CI band per system


def test_sim_quality_panels(tables):
    lb, _, _ = tables
    fig = plot_sim_quality(lb)
    assert [a.get_title() for a in fig.axes] == ["speaker similarity (resemblyzer)", "quality (dnsmos)"]
    assert plot_sim_quality(lb.drop(columns=["sim", "quality"])) is None


def test_rtf_leaves_out_systems_without_synthesis(tables):
    _, utt, _ = tables
    fig = plot_rtf_vs_length(utt)
    ax = fig.axes[0]
    pts = {c.get_label(): c.get_offsets() for c in ax.collections}
    assert set(pts) == {"valle", "halle"}  # ground truth has RTF 0
    ok = utt[(utt.system == "valle") & (utt.status == "ok")]
    assert len(pts["valle"]) == len(ok)
    np.testing.assert_allclose(sorted(pts["valle"][:, 0]), sorted(ok.audio_seconds))
    assert plot_rtf_vs_length(None) is None


def test_wer_by_position_panels(tables):
    _, _, pos = tables
    fig = plot_wer_by_position(pos)
    assert [a.get_title() for a in fig.axes] == ["30-60 s", "60-90 s"]
    ln = next(ln for ln in fig.axes[1].get_lines() if ln.get_label().startswith("valle"))
    want = pos[(pos.system == "valle") & (pos.bucket == "60-90")].sort_values("window")
    np.testing.assert_allclose(ln.get_xdata(), want.start_seconds)
    np.testing.assert_allclose(ln.get_ydata(), want.wer * 100)
    assert ln.get_label() == "valle (n=7)"  # one 60-90 utterance failed
    assert plot_wer_by_position(None) is None


def test_save_plots_png_and_deterministic(tables, tmp_path):
    lb, utt, pos = tables
    a = save_plots(lb, utt, pos, tmp_path / "a")
    b = save_plots(lb, utt, pos, tmp_path / "b")
    assert list(a) == ["wer_by_bucket", "sim_quality_by_bucket", "rtf_vs_length", "wer_by_position",
                       "sim_quality_by_position"]
    for name in a:
        data = a[name].read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
        assert data == b[name].read_bytes()
    assert list(save_plots(lb, None, None, tmp_path / "c")) == ["wer_by_bucket", "sim_quality_by_bucket"]


def test_similarity_by_position_is_plotted(tables):
    from halle_bench.plots import plot_sim_quality_by_position

    _, _, pos = tables
    fig = plot_sim_quality_by_position(pos)
    assert [a.get_title() for a in fig.axes] == ["30-60 s", "60-90 s"]  # sim only: the fixture has no pos_quality
    ln = next(x for x in fig.axes[1].get_lines() if x.get_label().startswith("valle"))
    want = pos[(pos.system == "valle") & (pos.bucket == "60-90")].sort_values("start_seconds")
    np.testing.assert_allclose(ln.get_ydata(), want.sim)
    assert ln.get_ydata()[-1] < ln.get_ydata()[0]  # the fixture's valle drifts away from the voice
    assert plot_sim_quality_by_position(pos.drop(columns=["sim"])) is None
