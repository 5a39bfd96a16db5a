"""Manifest readers: every supported benchmark list becomes a list of `Utterance`.

Formats (architecture.md, "Manifest formats to read"):

- ``jsonl``: one JSON object per line with ``id, text, audio, duration, speaker,
  prompt_audio, prompt_text`` (only ``id`` and ``text`` are required);
- ``csv``: the same columns, a header row first;
- ``seed-tts``: seed-tts-eval ``meta.lst``, ``utt|prompt_text|prompt_wav|target_text[|gt_wav]``;
- ``librispeech-pc``: the F5-TTS LibriSpeech-PC cross-sentence list, six tab-separated
  fields ``ref_utt, ref_dur, ref_txt, gen_utt, gen_dur, gen_txt``;
- ``audiofolder``: a Hugging Face style folder with ``metadata.csv`` or
  ``metadata.jsonl`` beside the audio (a ``file_name`` column names the audio);
- ``librispeech``, ``libritts``, ``librispeech-long``: a corpus folder as published
  (`corpora.py`); a folder without audio-folder metadata is probed for these layouts.

What is an error here and what is not (decisions):

- A malformed line (bad JSON, wrong field count, missing ``id``/``text`` column, a
  duration that is not a number, an id that is not a safe file name), an unknown format
  and duplicate ids are `ConfigError` with file and line: the run must stop before any
  work, because the set itself is wrong.
- A missing or corrupt audio file and empty text are *not* errors here: the utterance is
  kept and the runner records it as a failed row with the reason, so the denominator of
  every bucket stays the size of the benchmark.
- Ids become file names (``audio/<system>/<id>.wav``), so an id containing a path
  separator, a control character, or equal to ``.``/``..`` is rejected.
- Relative paths resolve against the manifest's folder (the audio folder for
  ``audiofolder``), as seed-tts-eval does for ``meta.lst``.
- ``duration`` comes from the audio header when the file is readable ("audio"), else the
  manifest's duration column ("manifest"), else ``word_count / WORDS_PER_SECOND``
  ("text-estimate"); ``Utterance.duration_source`` says which.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ..audio import audio_seconds
from ..errors import ConfigError, UtteranceError
from .corpora import CORPUS_FORMATS, detect_corpus, read_corpus
from .utterance import WORDS_PER_SECOND, Utterance

FORMATS = ("jsonl", "csv", "seed-tts", "librispeech-pc", "audiofolder", *CORPUS_FORMATS)
AUDIOFOLDER_METADATA = ("metadata.jsonl", "metadata.csv")

# Column aliases for the tabular formats (native JSONL/CSV and audio folders). The
# first name is the canonical one; the others are spellings found in public sets.
_ALIASES: dict[str, tuple[str, ...]] = {
    "id": ("id", "utt_id", "utt", "utterance_id"),
    "text": ("text", "transcript", "transcription", "sentence", "target_text", "normalized_text"),
    "audio": ("audio", "file_name", "audio_path", "wav", "gt_wav", "path"),
    "duration": ("duration", "duration_s", "seconds"),
    "speaker": ("speaker", "speaker_id", "spk", "spk_id"),
    "prompt_audio": ("prompt_audio", "prompt_wav", "prompt_path"),
    "prompt_text": ("prompt_text", "prompt_transcript"),
}
_UNSAFE_ID = re.compile(r"[/\\\x00-\x1f\x7f]")


# --------------------------------------------------------------------------- helpers


def _check_id(raw: Any, path: Path, line: int) -> str:
    if isinstance(raw, bool) or not isinstance(raw, (str, int)):
        raise ConfigError(f"utterance id must be a string, got {type(raw).__name__}", path, line)
    uid = str(raw).strip()
    if not uid:
        raise ConfigError("empty utterance id", path, line)
    if _UNSAFE_ID.search(uid) or uid in (".", ".."):
        raise ConfigError(
            f"utterance id {uid!r} cannot be used as a file name (no '/', '\\', control characters, '.' or '..')",
            path,
            line,
        )
    return uid


def _text(raw: Any, path: Path, line: int) -> str:
    # Empty / whitespace-only text is kept: the runner fails that utterance with a reason.
    if raw is None:
        return ""
    if not isinstance(raw, str):
        raise ConfigError(f"text must be a string, got {type(raw).__name__}", path, line)
    return raw.strip()


def _duration(raw: Any, path: Path, line: int) -> float | None:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    try:
        d = float(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"duration {raw!r} is not a number", path, line) from None
    if not math.isfinite(d) or d < 0:
        raise ConfigError(f"duration {raw!r} must be a finite number >= 0", path, line)
    return d


def _resolve(raw: Any, base: Path, path: Path, line: int, what: str) -> Path | None:
    if isinstance(raw, dict):  # Hugging Face style {"path": ..., "bytes": ...}
        raw = raw.get("path")
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if not isinstance(raw, str):
        raise ConfigError(f"{what} must be a path string, got {type(raw).__name__}", path, line)
    p = Path(raw.strip()).expanduser()
    return p if p.is_absolute() else base / p


def _finish(u: Utterance, manifest_duration: float | None) -> Utterance:
    """Fill duration and its source (audio header > manifest column > word count)."""
    if u.audio is not None:
        try:
            return u.with_(duration=audio_seconds(u.audio), duration_source="audio")
        except UtteranceError:
            pass  # missing/corrupt: kept, the runner fails it; fall back for the bucket
    if manifest_duration is not None:
        return u.with_(duration=manifest_duration, duration_source="manifest")
    return u.with_(duration=u.word_count / WORDS_PER_SECOND, duration_source="text-estimate")


def _pick(row: dict[str, Any], field: str) -> tuple[str | None, Any]:
    for name in _ALIASES[field]:
        if name in row:
            return name, row[name]
    return None, None


def _from_row(row: dict[str, Any], base: Path, path: Path, line: int, *, audiofolder: bool = False) -> Utterance:
    """A native JSONL/CSV or audio-folder row to an Utterance (columns via `_ALIASES`)."""
    used: set[str] = set()

    def take(field: str) -> Any:
        name, value = _pick(row, field)
        if name is not None:
            used.add(name)
        return value

    audio = _resolve(take("audio"), base, path, line, "audio")
    id_col, raw_id = _pick(row, "id")
    if id_col is None:
        if audiofolder and audio is not None:
            # HF audio folders often have no id column: the file's stem is the id.
            raw_id = audio.stem
        else:
            raise ConfigError(f"missing 'id' (columns: {', '.join(map(str, row)) or 'none'})", path, line)
    else:
        used.add(id_col)
    uid = _check_id(raw_id, path, line)
    text_col, raw_text = _pick(row, "text")
    if text_col is None:
        raise ConfigError(f"missing 'text' (columns: {', '.join(map(str, row)) or 'none'})", path, line)
    used.add(text_col)
    speaker = take("speaker")
    prompt_text = take("prompt_text")
    u = Utterance(
        id=uid,
        text=_text(raw_text, path, line),
        audio=audio,
        speaker=None if speaker is None or str(speaker).strip() == "" else str(speaker).strip(),
        prompt_audio=_resolve(take("prompt_audio"), base, path, line, "prompt_audio"),
        prompt_text=None if prompt_text is None else _text(prompt_text, path, line),
        source=f"{path}:{line}",
        extra={k: v for k, v in row.items() if k not in used and k is not None},
    )
    return _finish(u, _duration(take("duration"), path, line))


def _nonblank_lines(path: Path) -> Iterator[tuple[int, str]]:
    try:
        with open(path, encoding="utf-8-sig") as f:
            for i, ln in enumerate(f, start=1):
                if ln.strip():
                    yield i, ln.rstrip("\r\n")
    except UnicodeDecodeError as e:
        raise ConfigError(f"manifest is not UTF-8 text: {e}", path) from None


# --------------------------------------------------------------------------- readers


def _read_jsonl(path: Path, base: Path, audiofolder: bool = False) -> Iterator[Utterance]:
    for line, text in _nonblank_lines(path):
        try:
            row = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"invalid JSON: {e.msg} (column {e.colno})", path, line) from None
        if not isinstance(row, dict):
            raise ConfigError(f"expected a JSON object, got {type(row).__name__}", path, line)
        yield _from_row(row, base, path, line, audiofolder=audiofolder)


def _read_csv(path: Path, base: Path, audiofolder: bool = False) -> Iterator[Utterance]:
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f)
            header: list[str] | None = None
            start = 1
            for fields in reader:
                line, start = start, reader.line_num + 1  # a quoted field may span lines
                if not fields or all(not x.strip() for x in fields):
                    continue
                if header is None:
                    header = [h.strip() for h in fields]
                    if len(set(header)) != len(header):
                        raise ConfigError(f"duplicate column names in header: {header}", path, line)
                    continue
                if len(fields) != len(header):
                    raise ConfigError(
                        f"{len(fields)} fields but the header has {len(header)} ({', '.join(header)})", path, line
                    )
                yield _from_row(dict(zip(header, fields)), base, path, line, audiofolder=audiofolder)
    except csv.Error as e:
        raise ConfigError(f"malformed CSV: {e}", path, reader.line_num) from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"manifest is not UTF-8 text: {e}", path) from None


def _read_seed_tts(path: Path, base: Path) -> Iterator[Utterance]:
    for line, text in _nonblank_lines(path):
        parts = text.strip().split("|")
        if len(parts) not in (4, 5):
            raise ConfigError(
                f"expected 4 or 5 '|'-separated fields (utt|prompt_text|prompt_wav|target_text[|gt_wav]), got {len(parts)}",
                path,
                line,
            )
        uid = _check_id(parts[0], path, line)
        gt = _resolve(parts[4], base, path, line, "gt_wav") if len(parts) == 5 else None
        u = Utterance(
            id=uid,
            text=_text(parts[3], path, line),
            audio=gt,
            # seed-tts-eval lists name no speaker: cross-utterance prompting cannot group
            # them, which is why this format ships its own prompts ("given").
            speaker=None,
            prompt_audio=_resolve(parts[2], base, path, line, "prompt_wav"),
            prompt_text=_text(parts[1], path, line),
            source=f"{path}:{line}",
        )
        yield _finish(u, None)


def _librispeech_audio(root: Path, utt: str) -> Path:
    """LibriSpeech keeps `<spk>/<chapter>/<utt>.flac`; accept the list's folder, its
    `test-clean/` or `LibriSpeech/test-clean/` as the root, flac or wav. When none
    exists the first candidate is returned, so the failure names a concrete path."""
    spk, chap, _ = utt.split("-")
    candidates = [
        r / spk / chap / f"{utt}{ext}"
        for r in (root, root / "test-clean", root / "LibriSpeech" / "test-clean")
        for ext in (".flac", ".wav")
    ]
    return next((c for c in candidates if c.exists()), candidates[0])


def _read_librispeech_pc(path: Path, base: Path) -> Iterator[Utterance]:
    for line, text in _nonblank_lines(path):
        parts = text.split("\t")
        if len(parts) != 6:
            raise ConfigError(
                f"expected 6 tab-separated fields (ref_utt, ref_dur, ref_txt, gen_utt, gen_dur, gen_txt), got {len(parts)}",
                path,
                line,
            )
        ref_utt, ref_dur, ref_txt, gen_utt, gen_dur, gen_txt = (p.strip() for p in parts)
        for utt in (ref_utt, gen_utt):
            if len(utt.split("-")) != 3 or not all(utt.split("-")):
                raise ConfigError(f"LibriSpeech utterance id {utt!r} is not <speaker>-<chapter>-<index>", path, line)
        _duration(ref_dur, path, line)  # validated, not used: the prompt is read whole
        uid = _check_id(gen_utt, path, line)
        u = Utterance(
            id=uid,
            text=_text(gen_txt, path, line),
            audio=_librispeech_audio(base, gen_utt),
            speaker=gen_utt.split("-")[0],
            prompt_audio=_librispeech_audio(base, ref_utt),
            prompt_text=_text(ref_txt, path, line),
            source=f"{path}:{line}",
            extra={"prompt_id": ref_utt},
        )
        yield _finish(u, _duration(gen_dur, path, line))


def _read_audiofolder(path: Path) -> Iterator[Utterance]:
    folder = path if path.is_dir() else path.parent
    meta = path if path.is_file() else next((folder / m for m in AUDIOFOLDER_METADATA if (folder / m).exists()), None)
    if meta is None:
        raise ConfigError(f"audio folder has no {' or '.join(AUDIOFOLDER_METADATA)}", folder)
    if meta.suffix == ".jsonl":
        yield from _read_jsonl(meta, folder, audiofolder=True)
    else:
        yield from _read_csv(meta, folder, audiofolder=True)


# --------------------------------------------------------------------------- public


def detect_format(path: Path) -> str:
    """Infer the manifest format from the path (folder, file name, suffix) or, for
    `.lst`/`.txt` lists, from the first non-blank line's separators."""
    path = Path(path)
    if not path.exists():
        raise ConfigError("manifest not found", path)
    if path.is_dir() and not any((path / m).exists() for m in AUDIOFOLDER_METADATA):
        corpus = detect_corpus(path)
        if corpus is not None:
            return corpus
    if path.is_dir() or path.name in AUDIOFOLDER_METADATA:
        return "audiofolder"
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    if suffix == ".tsv":
        return "librispeech-pc"
    first = next((t for _, t in _nonblank_lines(path)), "")
    if first.lstrip().startswith("{"):
        return "jsonl"
    # Decide on the separator only; the reader then checks the field count, so a
    # malformed first line gets a file:line error rather than "cannot infer".
    if "\t" in first:
        return "librispeech-pc"
    if "|" in first:
        return "seed-tts"
    raise ConfigError(
        f"cannot infer the manifest format; set [dataset] format to one of {', '.join(FORMATS)}", path
    )


def read_manifest(path: Path, format: str | None = None) -> list[Utterance]:
    """Read a benchmark list in any supported format (see the module docstring).

    Raises ConfigError for an unknown format, a missing manifest, malformed lines
    (with file:line), duplicate ids (naming both lines) and an empty list.
    """
    path = Path(path).expanduser()
    if format is not None and format not in FORMATS:
        raise ConfigError(f"unknown manifest format {format!r}; expected one of {', '.join(FORMATS)}", path)
    fmt = format or detect_format(path)
    if not path.exists():
        raise ConfigError("manifest not found", path)
    path = path.resolve()
    if fmt != "audiofolder" and fmt not in CORPUS_FORMATS and path.is_dir():
        raise ConfigError(f"format {fmt!r} expects a file, got a folder", path)
    base = path.parent
    rows: Iterable[Utterance]
    if fmt == "jsonl":
        rows = _read_jsonl(path, base)
    elif fmt == "csv":
        rows = _read_csv(path, base)
    elif fmt == "seed-tts":
        rows = _read_seed_tts(path, base)
    elif fmt == "librispeech-pc":
        rows = _read_librispeech_pc(path, base)
    elif fmt in CORPUS_FORMATS:
        rows = (_finish(u, None) for u in read_corpus(path, fmt))
    else:
        rows = _read_audiofolder(path)

    out: list[Utterance] = []
    seen: dict[str, str | None] = {}
    for u in rows:
        if u.id in seen:
            file, _, line = (u.source or "").rpartition(":")
            raise ConfigError(f"duplicate utterance id {u.id!r} (first at {seen[u.id]})", file or path, int(line) if line.isdigit() else None)
        seen[u.id] = u.source
        out.append(u)
    if not out:
        raise ConfigError("manifest has no utterances", path)
    return out
