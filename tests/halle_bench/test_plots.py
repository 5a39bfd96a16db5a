"""The figures show what they claim: the plotted data equals the tables'."""

from __future__ import annotations

import numpy as np
import pytest
from runfixtures import make_run

from halle_bench.report import load_runs, merge_leaderboards, merge_positional, merge_utterances
from halle_bench.metric_registry import get_metric
from halle_bench.plots import (plot_line_by_bucket, plot_means_by_position, plot_points_by_bucket,
                               plot_ratio_by_position, plot_ratio_vs_length, save_plots)

WER, SIM, QUALITY, RTF = (get_metric(n) for n in ("wer", "sim", "quality", "rtf"))


def plot_wer_by_bucket(lb):
    return plot_line_by_bucket(lb, WER)


def plot_sim_quality(lb):
    return plot_points_by_bucket(lb, [SIM, QUALITY])


def plot_rtf_vs_length(utt):
    return plot_ratio_vs_length(utt, RTF)


def plot_wer_by_position(pos):
    return plot_ratio_by_position(pos, WER)


def plot_sim_quality_by_position(pos):
    return plot_means_by_position(pos, [SIM, QUALITY])


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
    assert [a.get_title() for a in fig.axes] == ["speaker similarity (vs prompt) (resemblyzer)",
                                                 "predicted quality (MOS) (dnsmos)"]
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
    _, _, pos = tables
    fig = plot_sim_quality_by_position(pos)
    assert [a.get_title() for a in fig.axes] == ["30-60 s", "60-90 s"]  # sim only: the fixture has no pos_quality
    ln = next(x for x in fig.axes[1].get_lines() if x.get_label().startswith("valle"))
    want = pos[(pos.system == "valle") & (pos.bucket == "60-90")].sort_values("start_seconds")
    np.testing.assert_allclose(ln.get_ydata(), want.sim)
    assert ln.get_ydata()[-1] < ln.get_ydata()[0]  # the fixture's valle drifts away from the voice
    assert plot_sim_quality_by_position(pos.drop(columns=["sim"])) is None


def test_legends_sit_outside_the_axes(tables):
    """The WER plot's legend hid a point: every legend is now anchored right of its axes."""
    lb, _, pos = tables
    for fig in (plot_wer_by_bucket(lb), plot_sim_quality(lb), plot_wer_by_position(pos)):
        for ax in fig.axes:
            leg = ax.get_legend()
            if leg is not None:
                assert leg.get_bbox_to_anchor().x0 >= ax.bbox.x1 - 1  # anchored at the axes' right edge
