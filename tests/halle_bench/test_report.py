"""report.md, the merged leaderboard, the rich table and the positional table."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from rich.console import Console
from runfixtures import make_run

from halle_bench.errors import ConfigError
from halle_bench.report import (load_run, load_runs, merge_leaderboards, positional_table,
                                render_leaderboard_table, write_report)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("r") / "run0", seed=0)


def test_write_report_single_run(run, capsys):
    md_path = write_report([run])
    assert md_path == run / "report.md"
    assert capsys.readouterr().out == ""  # nothing printed without a console
    md = md_path.read_text()
    lb = pd.read_csv(run / "leaderboard.csv")
    row = lb[(lb.system == "halle") & (lb.bucket == "60-90")].iloc[0]
    want = f"| halle | 60-90 | 8 | 0 | {row.wer * 100:.1f} [{row.wer_ci_low * 100:.1f}, {row.wer_ci_high * 100:.1f}] |"
    assert want in md
    # settings that produced the numbers
    env = json.loads((run / "env.json").read_text())
    assert env["models"][0]["sha256"] in md
    assert "normalizer = whisper-en" in md and "beam_size = 5" in md and "seed = `0`" in md
    assert env["git_revision"] in md
    # failures listed with their errors
    assert "## Failures (2)" in md
    assert "| valle | u60-90-03 | 60-90 | command exited with status 1: out of memory |" in md
    for name in ("wer_by_bucket", "sim_quality_by_bucket", "rtf_vs_length", "wer_by_position"):
        assert f"(plots/{name}.png)" in md and (run / "plots" / f"{name}.png").exists()
    assert (run / "exports" / "summary.json").exists()
    # buckets in numeric order, "all" last, within each system
    board = md.split("## Leaderboard")[1].split("## Common set")[0]
    order = [line.split("|")[2].strip() for line in board.splitlines() if line.startswith("| halle |")]
    assert order == ["3-10", "10-30", "30-60", "60-90", "all"]
    # the common set leaves out what any system failed (valle u60-90-03, halle u3-10-01), for every system
    common = md.split("## Common set (30 utterances every system completed)")[1].split("## Plots")[0]
    assert "| gt | 60-90 | 7 | 0 |" in common and "| halle | 3-10 | 7 | 0 |" in common
    assert "| valle | 60-90 | 7 | 0 |" in common


def test_console_gets_the_table(run, tmp_path):
    con = Console(record=True, width=220)
    write_report([run], out_dir=tmp_path / "out", console=con)
    text = con.export_text()
    assert "WER % [95% CI]" in text and "60-90" in text and "report:" in text
    assert (tmp_path / "out" / "report.md").exists()


def test_render_table_rows(run):
    lb = load_run(run).leaderboard
    t = render_leaderboard_table(lb)
    assert t.row_count == len(lb) == 15
    assert [c.header for c in t.columns][:5] == ["system", "bucket", "n", "failed", "WER % [95% CI]"]


def test_merge_runs_keeps_systems_apart(tmp_path):
    a = make_run(tmp_path / "ckpt-a", seed=0, audio=False)
    b = make_run(tmp_path / "ckpt-b", seed=1, audio=False)
    runs = load_runs([a, b])
    lb = merge_leaderboards(runs)
    assert len(lb) == 30
    assert list(dict.fromkeys(lb.system))[:2] == ["gt [ckpt-a]", "valle [ckpt-a]"]
    assert set(lb.run) == {"ckpt-a", "ckpt-b"}
    assert runs[1].audio_path("halle [ckpt-b]", "u3-10-00") == b / "audio" / "halle" / "u3-10-00.wav"
    md = write_report([a, b])
    assert md == tmp_path / "merged-report" / "report.md"
    text = md.read_text()
    assert "| halle [ckpt-b] | all |" in text and "### ckpt-a" in text and "### ckpt-b" in text


def test_same_folder_names_are_disambiguated(tmp_path):
    a = make_run(tmp_path / "x" / "run", seed=0, audio=False)
    b = make_run(tmp_path / "y" / "run", seed=1, audio=False)
    assert [r.name for r in load_runs([a, b])] == ["run", "run-2"]


def test_positional_table_long_utterances_only(run):
    pos = positional_table(load_run(run))
    assert set(pos.bucket) == {"30-60", "60-90", "all"}  # 3-10 and 10-30 have one window only
    # recompute one cell from scores.jsonl
    rows = [json.loads(line) for line in (run / "scores.jsonl").read_text().splitlines()]
    cell = [r["values"] for r in rows if r["system"] == "halle" and r["scorer"] == "wer" and r["id"].startswith("u60-90")]
    e = sum(v["pos_errors"][2] for v in cell)
    w = sum(v["pos_words"][2] for v in cell)
    got = pos[(pos.system == "halle") & (pos.bucket == "60-90") & (pos.window == 2)].iloc[0]
    assert got.wer == pytest.approx(e / w, rel=1e-5) and got.start_seconds == 60.0 and got.n_wer == 8


def test_not_a_run_dir(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_run(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="leaderboard.csv is missing"):
        write_report([tmp_path / "empty"])
    with pytest.raises(ConfigError, match="no run directory"):
        load_runs([])


def test_markdown_cells_escaped(tmp_path):
    run = make_run(tmp_path / "run", seed=0, audio=False)
    u = pd.read_csv(run / "utterances.csv")
    u.loc[u.status == "failed", "error"] = "bad | pipe\nand newline"
    u.to_csv(run / "utterances.csv", index=False)
    md = write_report([run]).read_text()
    assert "bad \\| pipe and newline" in md


# ----------------------------------------------------------------------------- console (issue 17)


@pytest.mark.parametrize("columns", ["100", "120"])
def test_console_summary_fits_the_log(run, tmp_path, capsys, monkeypatch, columns):
    """19 columns squeezed into 200 characters in CI logs (COLUMNS ignored), buckets cut
    to `3-…`, n zero wide: now a per-system summary that fits COLUMNS, nothing cut."""
    from halle_bench.cli import main

    monkeypatch.setenv("COLUMNS", columns)
    assert main(["report", str(run), "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert max(len(ln) for ln in lines) <= int(columns)
    assert "…" not in out
    head = next(ln for ln in lines if "system" in ln)
    for h in ("system", "n", "failed", "WER %", "sim", "quality", "3-10 s", "60-90 s"):
        assert h in head
    # one row per system, with its all-bucket WER and the WER of each bucket
    lb = pd.read_csv(run / "leaderboard.csv").set_index(["system", "bucket"])
    halle = next(ln for ln in lines if ln.startswith("│ halle "))
    for b in ("3-10", "60-90", "all"):
        assert f"{lb.loc[('halle', b), 'wer'] * 100:.1f}" in halle


def test_console_wide_prints_everything(run, tmp_path, capsys, monkeypatch):
    from halle_bench.cli import main

    monkeypatch.setenv("COLUMNS", "100")
    assert main(["report", str(run), "--out", str(tmp_path / "o"), "--wide"]) == 0
    out = capsys.readouterr().out
    assert "WER macro %" in out and "sub/del/ins %" in out and "…" not in out
    assert sum(1 for ln in out.splitlines() if ln.startswith("│ halle ")) == 5  # every bucket row


def test_summary_falls_back_to_rows_per_bucket():
    from halle_bench.report_tables import summary_rows

    lb = pd.DataFrame([{"system": "s" * 30, "bucket": b, "n": 2, "n_failed": 0, "wer": 0.1, "sim": 0.8,
                        "quality": 3.0} for b in ("3-10", "10-30", "30-60", "60-90", "90-120", "all")])
    headers, rows, _, layout = summary_rows(lb, 60)
    assert layout == "per bucket" and headers[:4] == ["system", "bucket", "n", "failed"] and len(rows) == 6
