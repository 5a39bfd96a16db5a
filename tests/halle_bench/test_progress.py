"""The reporter's plain progress lines: counts in items, ETA from the work done."""

from __future__ import annotations

import io
import re

from halle_bench.progress import Reporter


def _etas(text: str) -> list[tuple[int, float, float]]:
    return [(int(m[0]), float(m[1]), float(m[2])) for m in re.findall(r"\] (\d+)/\d+ \(([\d.]+)s, eta ([\d.]+)s\)", text)]


def test_eta_follows_work_not_items(monkeypatch):
    clock = iter([0.0, 30.0, 31.0])  # start; the long item after 30 s; the ten short ones 1 s later
    monkeypatch.setattr("halle_bench.progress.time.perf_counter", lambda: next(clock))
    out = io.StringIO()
    with Reporter(stream=out, force_plain=True).stage("generate x", 11, work=31 + 10 * 1.1) as st:
        st.advance(1, work=31.0)  # one 30 s item (+1 per item)
        st.advance(10, work=11.0)  # ten 0.1 s items
    lines = _etas(out.getvalue())
    assert out.getvalue().startswith("[generate x] 0/11\n")
    # After the long item, 31/42 of the work is done: eta 30 * 11/31 s, not 30 * 10 s.
    assert lines[0][0] == 1 and abs(lines[0][2] - 30 * 11 / 31) < 0.1
    assert lines[-1] == (11, 31.0, 0.0)


def test_without_work_progress_is_in_items(monkeypatch):
    clock = iter([0.0, 2.0, 4.0])
    monkeypatch.setattr("halle_bench.progress.time.perf_counter", lambda: next(clock))
    out = io.StringIO()
    with Reporter(stream=out, force_plain=True).stage("s", 2) as st:
        st.advance()
        st.advance()
    assert _etas(out.getvalue()) == [(1, 2.0, 2.0), (2, 4.0, 0.0)]
