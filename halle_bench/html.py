"""`halle-bench report --html`: one self-contained HTML page (no external files, no scripts).

Decisions:
- Plots are embedded as base64 PNG, audio as base64 16-bit PCM WAV at 16 kHz, cut to
  the first `max_seconds` (20 s): a 90 s clip would be ~4 MB of base64 on its own.
  `max_total_seconds` caps the whole page; clips past it are listed, not embedded.
- The listening sample is deterministic and shared across systems and runs: within
  each bucket, utterance ids are ranked by sha256(f"{seed}:{id}") and the first
  `per_bucket` are shown for every system of every merged run side by side (a failed
  one shows its error), under the manifest's own text (utterances.csv `text`; the
  normalised `ref_norm` only for runs written before it was recorded), so a reader
  compares systems, and two runs of one system, on the same text.
- The leaderboard fits a 1280 px window: the page is at most 1240 px wide, headers
  wrap, and a CI goes under its value instead of beside it. The common-set table of
  report.md (systems compared on the utterances all of them completed) is there too.
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
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1240px;
     padding:0 1em;color:#222;box-sizing:border-box}
h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;font-size:.85em;margin:.6em 0}
th,td{border:1px solid #ddd;padding:.25em .5em;text-align:right;vertical-align:top}
th{background:#f4f4f4;white-space:normal;max-width:7em}td.l,th.l{text-align:left}
tr.all td{font-weight:600;background:#fafafa}table.lb{font-size:.76em}table.lb td{white-space:nowrap}
table.lb th,table.lb td{padding:.2em .3em}table.lb th{max-width:4.5em}
.ci{display:block;color:#666;font-size:.85em;font-weight:400}
.row{display:flex;flex-wrap:wrap}
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


def _cell(text: str) -> str:
    """A value with its CI ("9.8 [7.2, 12.9]"): the value, and the CI on a line below."""
    m = re.match(r"^(.*?) (\[[^\]]*\])(.*)$", text)
    if m is None:
        return html.escape(text)
    return f'{html.escape(m.group(1) + m.group(3))}<span class="ci">{html.escape(m.group(2))}</span>'


def leaderboard_html(lb: pd.DataFrame) -> str:
    cols = display_columns(lb)
    head = "".join(f'<th class="{"l" if h in ("system", "bucket") else ""}">{html.escape(h)}</th>' for h, _ in cols)
    body = []
    for r in lb.to_dict(orient="records"):
        cells = "".join(f'<td class="{"l" if h in ("system", "bucket") else ""}">{_cell(f(r))}</td>'
                        for h, f in cols)
        body.append(f'<tr class="{"all" if r["bucket"] == "all" else ""}">{cells}</tr>')
    return '<table class="lb"><tr>' + head + "</tr>" + "".join(body) + "</table>"


def _num(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _text(row: dict) -> str:
    """The manifest's text of an utterance; the normalised reference for older runs."""
    t = row.get("text")
    if isinstance(t, str) and t.strip():
        return t
    t = row.get("ref_norm")
    return t if isinstance(t, str) else ""


def listening_html(runs: list[RunData], per_bucket: int, max_seconds: float, max_total_seconds: float,
                   seed: int) -> str:
    """One block per sampled utterance: its manifest text, then every system of every run
    side by side, two runs of one system next to each other ("system [run]")."""
    parts, budget = [], max_total_seconds
    with_utt = [r for r in runs if r.utterances is not None and not r.utterances.empty]
    if not with_utt:
        return '<p class="muted">No per-utterance audio in these runs.</p>'
    cols: list[tuple[RunData, str]] = []  # (run, shown system name)
    for run in with_utt:
        cols += [(run, s) for s in (list(run.systems) or list(dict.fromkeys(run.utterances["system"])))]
    first = {name: i for i, name in enumerate(dict.fromkeys(run.systems.get(s, s) for run, s in cols))}
    cols.sort(key=lambda rs: first[rs[0].systems.get(rs[1], rs[1])])  # stable: runs keep their order
    rows = {(id(run), r["system"], str(r["id"])): r for run in with_utt
            for r in run.utterances.to_dict(orient="records")}
    allutt = pd.concat([r.utterances for r in with_utt], ignore_index=True)
    for bucket, ids in sample_ids(allutt, per_bucket, seed).items():
        parts.append(f"<h4>{html.escape(bucket)} s</h4>")
        for uid in ids:
            any_row = next((rows[(id(run), s, uid)] for run, s in cols if (id(run), s, uid) in rows), {})
            text = _text(any_row)
            parts.append(f'<div class="txt"><b>{html.escape(uid)}</b> '
                         f'<span class="muted">({_num(any_row.get("duration")):.1f} s)</span> '
                         f'{html.escape(text[:600])}{"…" if len(text) > 600 else ""}</div><div class="row">')
            for run, s in cols:
                r = rows.get((id(run), s, uid))
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
    return "\n".join(parts)


def write_html(runs: list[RunData], lb: pd.DataFrame, fails: pd.DataFrame, plots: dict[str, Path],
               out_path: Path, per_bucket: int = 1, max_seconds: float = 20.0,
               max_total_seconds: float = 600.0, seed: int = 0, common: pd.DataFrame | None = None,
               n_common: int = 0) -> Path:
    """Write the page and return its path (see the module docstring for the choices)."""
    title = "halle-bench report: " + ", ".join(r.name for r in runs)
    body = [f"<h1>{html.escape(title)}</h1>",
            "<p class=muted>WER is corpus-level, in percent, with a bootstrap 95% CI; failed utterances are "
            "counted, not scored.</p>",
            "<h2>Leaderboard</h2>", leaderboard_html(lb)]
    if common is not None:
        body += [f"<h2>Common set ({n_common} utterances every system completed)</h2>",
                 "<p class=muted>The same metrics over the utterances that no system failed, so that these rows "
                 "compare systems on the same texts.</p>", leaderboard_html(common)]
    elif n_common:
        body.append("<p class=muted>Every system completed every utterance: the leaderboard is over one common "
                    "set.</p>")
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
