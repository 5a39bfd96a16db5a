"""The HTML page: self-contained, capped audio, deterministic sample, escaped, renders in Chromium."""

from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from runfixtures import _tone, make_run

from halle_bench.audio import save_audio
from halle_bench.html import md_to_html, sample_ids, write_html
from halle_bench.report import failures, load_runs, merge_leaderboards, write_report


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    run = make_run(tmp_path_factory.mktemp("h") / "run", seed=0)
    write_report([run], html=True)
    return run, (run / "report.html").read_text()


def test_self_contained(page):
    _, text = page
    assert "<script" not in text
    assert not re.search(r'(src|href)="(?!data:)', text)  # nothing fetched from anywhere
    assert text.count('src="data:image/png;base64,') == 5
    # one utterance per bucket, every system: 4 buckets x 3 systems, minus failures among the sample
    n_audio = text.count("<audio ")
    n_failed = text.count('class="err">failed:')
    assert n_audio + n_failed == 12 and n_audio >= 10


def test_sample_is_deterministic_and_shared(page):
    run, _ = page
    utt = load_runs([run])[0].utterances
    a, b = sample_ids(utt, 2, seed=0), sample_ids(utt, 2, seed=0)
    assert a == b and list(a) == ["3-10", "10-30", "30-60", "60-90"]
    assert all(len(v) == 2 for v in a.values())
    assert sample_ids(utt, 2, seed=1) != a


def test_audio_capped(tmp_path):
    run = make_run(tmp_path / "run", seed=0, audio=False)
    runs = load_runs([run])
    utt = runs[0].utterances
    ids = sample_ids(utt, 1)
    for b, (uid,) in ids.items():
        for s in ("gt", "valle", "halle"):
            save_audio(run / "audio" / s / f"{uid}.wav", _tone(25.0 if b == "60-90" else 2.0, 200.0, 24000), 24000)
    out = write_html(runs, merge_leaderboards(runs), failures(utt), {}, tmp_path / "p.html", max_seconds=20.0,
                     max_total_seconds=50.0)
    text = out.read_text()
    clips = [sf.read(io.BytesIO(base64.b64decode(m)))
             for m in re.findall(r'src="data:audio/wav;base64,([^"]+)"', text)]
    assert all(sr == 16000 for _, sr in clips)
    seconds = [len(x) / sr for x, sr in clips]
    assert max(seconds) <= 20.0 and sum(seconds) <= 50.0 + 1e-6
    assert "first 20 s of 25 s" in text or "page audio budget" in text
    assert "not embedded" in text  # 3 x 2 s x 3 buckets + 20 s ... exceeds the 50 s budget


def test_missing_audio_is_reported_not_fatal(tmp_path):
    run = make_run(tmp_path / "run", seed=0, audio=False)
    write_report([run], html=True)
    assert "audio file not found" in (run / "report.html").read_text()


def test_escaping(tmp_path):
    run = make_run(tmp_path / "run", seed=0, audio=False)
    u = pd.read_csv(run / "utterances.csv")
    u.loc[u.status == "failed", "error"] = "<script>alert(1)</script>"
    u.to_csv(run / "utterances.csv", index=False)
    write_report([run], html=True)
    text = (run / "report.html").read_text()
    assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_md_subset():
    h = md_to_html("### t\n\n- a `x<y`\n- b\n\n| h | i |\n|---|---|\n| 1 \\| 2 | 3 |\n")
    assert "<h4>t</h4>" in h and "<li>a <code>x&lt;y</code></li>" in h
    assert "<td class=\"l\">1 | 2</td>" in h


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(CHROMIUM is None, reason="no headless Chromium (apt-get install chromium)")
def test_renders_in_headless_chromium(page, tmp_path):
    run, _ = page
    shot = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--hide-scrollbars", "--window-size=1200,1800", f"--screenshot={shot}",
                    (run / "report.html").resolve().as_uri()],
                   capture_output=True, timeout=120, check=True)
    from PIL import Image

    img = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert img.shape == (1800, 1200)
    # a rendered page: mostly white background, but text, tables and plots drawn on it
    assert img.mean() > 180 and img.std() > 20
    dark_rows = (img < 128).any(axis=1).mean()
    assert dark_rows > 0.3


def test_no_report_html_import_cycle():
    import subprocess
    import sys

    code = "import sys, halle_bench.html; print('halle_bench.report' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


# ----------------------------------------------------------------------------- issue 17


def test_common_set_manifest_text_and_merged_runs_side_by_side(tmp_path):
    a = make_run(tmp_path / "a" / "run", seed=0, audio=False)
    b = make_run(tmp_path / "b" / "run2", seed=1, audio=False)
    for r in (a, b):  # the manifest's text differs from the normalised reference
        u = pd.read_csv(r / "utterances.csv")
        u["text"] = "MANIFEST TEXT, as written: " + u["text"]
        u.to_csv(r / "utterances.csv", index=False)
    write_report([a], html=True)
    one = (a / "report.html").read_text()
    assert "Common set (30 utterances every system completed)" in one
    listen = one.split("<h2>Listen</h2>")[1]
    assert "MANIFEST TEXT, as written:" in listen
    out = write_report([a, b], out_dir=tmp_path / "m", html=True)
    page = (out.parent / "report.html").read_text()
    block = page.split("<h2>Listen</h2>")[1].split('<div class="row">')[1].split('<div class="txt">')[0]
    labels = re.findall(r"<b>([^<]+)</b>", block)
    assert labels[:4] == ["gt [run]", "gt [run2]", "valle [run]", "valle [run2]"]


@pytest.mark.skipif(CHROMIUM is None, reason="no headless Chromium (apt-get install chromium)")
def test_leaderboard_fits_1280_px(tmp_path):
    """The demo's full leaderboard overflowed a 1280 px window."""
    from pathlib import Path

    demo = Path(__file__).resolve().parents[2] / "results" / "demo"
    shutil.copytree(demo, tmp_path / "demo")
    write_report([tmp_path / "demo"], html=True)
    text = (tmp_path / "demo" / "report.html").read_text()
    probe = ("<script>document.title='W'+document.documentElement.scrollWidth+'/'+Math.max(...[...document"
             ".querySelectorAll('table')].map(t=>t.getBoundingClientRect().right))</script></body>")
    (tmp_path / "probe.html").write_text(text.replace("</body>", probe))
    out = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                          "--window-size=1280,900", "--dump-dom", (tmp_path / "probe.html").as_uri()],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    page_w, table_right = map(float, re.search(r"<title>W([\d.]+)/([\d.]+)</title>", out).groups())
    assert page_w <= 1280 and table_right <= 1280
