"""`halle-bench report --html`: one self-contained HTML page (no external files, no scripts).

Decisions:
- Plots are embedded as base64 PNG, audio as base64 16-bit PCM WAV at 16 kHz, cut to
  the first `max_seconds` (20 s): a 90 s clip would be ~4 MB of base64 on its own.
  `max_total_seconds` caps the whole page; clips past it are listed, not embedded.
- The listening sample is deterministic and shared across systems: within each
  bucket, utterance ids are ranked by sha256(f"{seed}:{id}") and the first
  `per_bucket` are shown for every system side by side (a failed one shows its error),
  so a reader compares systems on the same text.
- All text from the run (ids, texts, errors, settings) is HTML-escaped. The settings
  and failures come from the same markdown that report.md holds, through a converter
  for the small markdown subset that report.py writes (headings, bullets, tables, code).
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import math
import re
from pathlib import Path

import pandas as pd

from .audio import SCORING_SR, load_audio
from .errors import UtteranceError
from .exports import sorted_buckets
from .report_tables import RunData, display_columns, markdown_table, settings_markdown

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1200px;
     padding:0 1em;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;font-size:.85em;margin:.6em 0}
th,td{border:1px solid #ddd;padding:.25em .5em;text-align:right;vertical-align:top}
th{background:#f4f4f4}td.l,th.l{text-align:left}tr.all td{font-weight:600;background:#fafafa}
img{max-width:100%;border:1px solid #eee;margin:.5em 0}
code{background:#f4f4f4;padding:0 .2em;font-size:.9em;word-break:break-all}
.clip{display:inline-block;margin:.3em .6em .3em 0;vertical-align:top;width:320px}
.clip audio{width:300px}.txt{font-size:.85em;color:#444;max-width:1100px}
.err{color:#b00020;font-size:.85em}.muted{color:#777;font-size:.85em}
"""


def png_data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode()


def wav_data_uri(x, sr: int = SCORING_SR) -> str:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, x, sr, subtype="PCM_16", format="WAV")
    return "data:audio/wav;base64," + base64.b64encode(buf.getvalue()).decode()


def clip_uri(path: Path, max_seconds: float) -> tuple[str, float, float]:
    """(data URI of the first `max_seconds` at 16 kHz, seconds embedded, seconds in the file);
    UtteranceError if the file is missing or unreadable."""
    x, sr, _ = load_audio(path, SCORING_SR)
    full = len(x) / sr
    x = x[: int(max_seconds * sr)]
    return wav_data_uri(x, sr), len(x) / sr, full


def sample_ids(utt: pd.DataFrame, per_bucket: int, seed: int = 0) -> dict[str, list[str]]:
    """bucket -> the first `per_bucket` utterance ids by sha256(seed:id) (same ids for all systems)."""
    out = {}
    for b in sorted_buckets(utt["bucket"].dropna()):
        ids = sorted(set(utt.loc[utt["bucket"] == b, "id"].astype(str)),
                     key=lambda i: hashlib.sha256(f"{seed}:{i}".encode()).hexdigest())
        out[b] = ids[:per_bucket]
    return out


# ----------------------------------------------------------------------------- markdown subset


def _inline(s: str) -> str:
    s = html.escape(s, quote=False)
    return re.sub(r"`([^`]*)`", r"<code>\1</code>", s)


def md_to_html(md: str) -> str:
    """Headings, bullets, pipe tables and `code` (what report.py writes); everything escaped."""
    out, lines, i = [], md.splitlines(), 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            out.append(f"<h{min(level + 1, 6)}>{_inline(line.lstrip('#').strip())}</h{min(level + 1, 6)}>")
        elif line.startswith("- "):
            items = []
            while i < len(lines) and lines[i].startswith("- "):
                items.append(f"<li>{_inline(lines[i][2:])}</li>")
                i += 1
            out.append("<ul>" + "".join(items) + "</ul>")
            continue
        elif line.startswith("|"):
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(lines[i])
                i += 1
            cells = [[c.replace("\\|", "|").strip() for c in re.split(r"(?<!\\)\|", r.strip())[1:-1]] for r in rows]
            head, body = cells[0], [c for c in cells[2:]]
            out.append("<table><tr>" + "".join(f'<th class="l">{_inline(h)}</th>' for h in head) + "</tr>"
                       + "".join("<tr>" + "".join(f'<td class="l">{_inline(c)}</td>' for c in r) + "</tr>" for r in body)
                       + "</table>")
            continue
        elif line.strip():
            out.append(f"<p>{_inline(line)}</p>")
        i += 1
    return "\n".join(out)


# ----------------------------------------------------------------------------- page


def leaderboard_html(lb: pd.DataFrame) -> str:
    cols = display_columns(lb)
    head = "".join(f'<th class="{"l" if h in ("system", "bucket") else ""}">{html.escape(h)}</th>' for h, _ in cols)
    body = []
    for r in lb.to_dict(orient="records"):
        cells = "".join(f'<td class="{"l" if h in ("system", "bucket") else ""}">{html.escape(f(r))}</td>'
                        for h, f in cols)
        body.append(f'<tr class="{"all" if r["bucket"] == "all" else ""}">{cells}</tr>')
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _num(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def listening_html(runs: list[RunData], per_bucket: int, max_seconds: float, max_total_seconds: float,
                   seed: int) -> str:
    parts, budget = [], max_total_seconds
    for run in runs:
        utt = run.utterances
        if utt is None or utt.empty:
            continue
        systems = list(run.systems) or list(dict.fromkeys(utt["system"]))
        rows = {(r["system"], str(r["id"])): r for r in utt.to_dict(orient="records")}
        if len(runs) > 1:
            parts.append(f"<h3>{html.escape(run.name)}</h3>")
        for bucket, ids in sample_ids(utt, per_bucket, seed).items():
            parts.append(f"<h4>{html.escape(bucket)} s</h4>")
            for uid in ids:
                any_row = next((rows[(s, uid)] for s in systems if (s, uid) in rows), {})
                ref = str(any_row.get("ref_norm") or "")
                parts.append(f'<div class="txt"><b>{html.escape(uid)}</b> '
                             f'<span class="muted">({_num(any_row.get("duration")):.1f} s)</span> '
                             f'{html.escape(ref[:400])}{"…" if len(ref) > 400 else ""}</div><div>')
                for s in systems:
                    r = rows.get((s, uid))
                    label = f"<b>{html.escape(s)}</b>"
                    if r is None:
                        continue
                    if r.get("status") != "ok":
                        parts.append(f'<div class="clip">{label}<div class="err">failed: '
                                     f'{html.escape(str(r.get("error") or "")[:200])}</div></div>')
                        continue
                    wer = _num(r.get("wer"))
                    info = f' <span class="muted">WER {wer * 100:.1f}%</span>' if math.isfinite(wer) else ""
                    if budget <= 0:
                        parts.append(f'<div class="clip">{label}{info}<div class="muted">not embedded '
                                     f'(page audio budget of {max_total_seconds:g} s used)</div></div>')
                        continue
                    try:
                        uri, secs, full = clip_uri(run.audio_path(s, uid), min(max_seconds, budget))
                    except UtteranceError as e:
                        parts.append(f'<div class="clip">{label}<div class="err">{html.escape(str(e))}</div></div>')
                        continue
                    budget -= secs
                    note = f' <span class="muted">(first {secs:.0f} s of {full:.0f} s)</span>' if full > secs else ""
                    parts.append(f'<div class="clip">{label}{info}{note}<br>'
                                 f'<audio controls preload="none" src="{uri}"></audio></div>')
                parts.append("</div>")
    return "\n".join(parts) or '<p class="muted">No per-utterance audio in these runs.</p>'


def write_html(runs: list[RunData], lb: pd.DataFrame, fails: pd.DataFrame, plots: dict[str, Path],
               out_path: Path, per_bucket: int = 1, max_seconds: float = 20.0,
               max_total_seconds: float = 600.0, seed: int = 0) -> Path:
    """Write the page and return its path (see the module docstring for the choices)."""
    title = "halle-bench report: " + ", ".join(r.name for r in runs)
    body = [f"<h1>{html.escape(title)}</h1>",
            "<p class=muted>WER is corpus-level, in percent, with a bootstrap 95% CI; failed utterances are "
            "counted, not scored.</p>",
            "<h2>Leaderboard</h2>", leaderboard_html(lb)]
    if plots:
        body.append("<h2>Plots</h2>")
        body += [f'<figure><img alt="{html.escape(n)}" src="{png_data_uri(p)}"></figure>' for n, p in plots.items()]
    body += ["<h2>Listen</h2>",
             f"<p class=muted>{per_bucket} utterance(s) per bucket, the same for every system, first "
             f"{max_seconds:g} s at 16 kHz.</p>",
             listening_html(runs, per_bucket, max_seconds, max_total_seconds, seed)]
    body.append("<h2>Settings</h2>")
    body += [md_to_html(settings_markdown(r)) for r in runs]
    body.append(f"<h2>Failures ({len(fails)})</h2>")
    if len(fails):
        body.append(md_to_html(markdown_table(list(fails.columns), [["" if v is None else str(v)[:300] for v in row]
                                                                    for row in fails.itertuples(index=False)])))
    else:
        body.append("<p>None.</p>")
    page = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(page, encoding="utf-8")
    return out_path
