"""Corpus readers: the folders people already have on disk, read as they are published.

Formats (``[dataset] format``, with ``manifest`` naming the folder):

- ``librispeech``: ``<speaker>/<chapter>/<speaker>-<chapter>-<index>.flac`` and one
  ``<speaker>-<chapter>.trans.txt`` per chapter, lines ``<utterance id> <TEXT>``
  (openslr SLR12). The folder may be a split (``test-clean``) or anything above it
  (``LibriSpeech/``): transcripts are found recursively.
- ``libritts``: LibriTTS and LibriTTS-R (SLR60 / SLR141):
  ``<speaker>/<chapter>/<speaker>_<chapter>_<paragraph>_<sentence>.wav`` beside
  ``.normalized.txt`` (the text read, numbers and abbreviations spelled out: what a TTS
  system is asked to say, the default) and ``.original.txt`` (the book's text);
  ``text = "original"`` is not offered because WER against unspoken digits measures the
  normaliser, not the system.
- ``librispeech-long``: LibriSpeech-Long (Park et al., 2024/2025; CC-BY 4.0, google-deepmind/
  librispeech-long, ``v0_1.tar.gz``): ``librispeech-long/<split>/<speaker>/<chapter>/
  <chapter>_<segment>.flac`` with a one-line ``<chapter>_<segment>.txt`` transcript beside
  each. The layout was established from public material (the project's README and a
  public data-preparation recipe that walks the released tree), not from the archive
  itself; the reader checks it and says what it expected when a folder does not match.

Every utterance knows its speaker and chapter (``extra["chapter"]``); ``extra["corpus"]``
names the format and ``extra["index"]`` the position within the chapter used for
ordering (LibriSpeech utterance number; LibriTTS (paragraph, sentence); LibriSpeech-Long
segment). Utterances come sorted by (speaker, chapter, index), so "consecutive" means
what it means in the book. Ids are the corpus's own (LibriSpeech ``1089-134686-0000``,
LibriTTS ``1089_134686_000001_000000``, LibriSpeech-Long ``1089-134686-0003``).
``source`` is the transcript file and line, so every later error names them.
A chapter folder whose audio lacks a transcript (or the reverse) is a `ConfigError`
naming both: a half-extracted archive must not silently become a smaller benchmark.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from ..errors import ConfigError
from .utterance import Utterance

CORPUS_FORMATS = ("librispeech", "libritts", "librispeech-long")

_LS_ID = re.compile(r"^(\d+)-(\d+)-(\d+)$")
_LTTS_ID = re.compile(r"^(\d+)_(\d+)_(\d+)_(\d+)$")
_LSL_STEM = re.compile(r"^(\d+)_(\d+)$")
_AUDIO_EXT = (".flac", ".wav")


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"transcript is not UTF-8 text: {e}", path) from None
    except OSError as e:
        raise ConfigError(f"cannot read transcript: {e}", path) from None


def _audio_beside(folder: Path, stem: str) -> Path:
    """`<stem>.flac` or `.wav` in `folder`; the .flac path when neither exists (the
    validator then reports a concrete missing file)."""
    for ext in _AUDIO_EXT:
        p = folder / f"{stem}{ext}"
        if p.exists():
            return p
    return folder / f"{stem}{_AUDIO_EXT[0]}"


def _check_orphans(folder: Path, known: set[str], what: str) -> None:
    orphans = sorted(p.name for ext in _AUDIO_EXT for p in folder.glob(f"*{ext}") if p.stem not in known)
    if orphans:
        raise ConfigError(f"{len(orphans)} audio file(s) without a transcript line ({what}), e.g. {orphans[0]}", folder)


def _need_folder(root: Path, fmt: str) -> Path:
    root = Path(root).expanduser()
    if not root.exists():
        raise ConfigError("corpus folder not found", root)
    if not root.is_dir():
        raise ConfigError(f"format {fmt!r} expects the corpus folder, got a file", root)
    return root.resolve()


def _read_librispeech(root: Path) -> Iterator[Utterance]:
    found = False
    for trans in sorted(root.rglob("*.trans.txt")):
        found = True
        chapter_dir = trans.parent
        known: set[str] = set()
        for line, raw in enumerate(_read_text(trans).splitlines(), start=1):
            if not raw.strip():
                continue
            uid, _, text = raw.strip().partition(" ")
            m = _LS_ID.match(uid)
            if m is None:
                raise ConfigError(f"expected '<speaker>-<chapter>-<index> TEXT', got {raw.strip()[:60]!r}", trans, line)
            spk, chap, idx = m.groups()
            if f"{spk}-{chap}" != trans.name[: -len(".trans.txt")]:
                raise ConfigError(f"utterance {uid} does not belong to this chapter's transcript", trans, line)
            known.add(uid)
            yield Utterance(id=uid, text=text.strip(), audio=_audio_beside(chapter_dir, uid), speaker=spk,
                            source=f"{trans}:{line}",
                            extra={"chapter": chap, "corpus": "librispeech", "index": int(idx)})
        _check_orphans(chapter_dir, known, trans.name)
    if not found:
        raise ConfigError("no LibriSpeech transcripts (<speaker>/<chapter>/<speaker>-<chapter>.trans.txt) under this folder", root)


def _read_libritts(root: Path) -> Iterator[Utterance]:
    found = False
    chapters: dict[Path, set[str]] = {}
    for txt in sorted(root.rglob("*.normalized.txt")):
        found = True
        stem = txt.name[: -len(".normalized.txt")]
        m = _LTTS_ID.match(stem)
        if m is None:
            raise ConfigError("expected a LibriTTS name <speaker>_<chapter>_<paragraph>_<sentence>.normalized.txt", txt)
        spk, chap, para, sent = m.groups()
        chapters.setdefault(txt.parent, set()).add(stem)
        # One sentence per file; LibriTTS files hold no newline, LibriTTS-R sometimes one.
        text = " ".join(_read_text(txt).split())
        yield Utterance(id=stem, text=text, audio=_audio_beside(txt.parent, stem), speaker=spk, source=f"{txt}:1",
                        extra={"chapter": chap, "corpus": "libritts", "index": (int(para), int(sent))})
    for folder, known in chapters.items():
        _check_orphans(folder, known, "<utterance>.normalized.txt")
    if not found:
        raise ConfigError("no LibriTTS transcripts (<speaker>/<chapter>/<utterance>.normalized.txt) under this folder", root)


def _read_librispeech_long(root: Path) -> Iterator[Utterance]:
    found = False
    chapters: dict[Path, set[str]] = {}
    for txt in sorted(root.rglob("*.txt")):
        m = _LSL_STEM.match(txt.stem)
        if m is None or txt.name.endswith(".trans.txt"):
            continue
        chap, seg = m.groups()
        spk = txt.parent.parent.name
        if txt.parent.name != chap or not spk.isdigit():
            raise ConfigError(f"expected <speaker>/<chapter>/<chapter>_<segment>.txt (chapter folder {chap})", txt)
        found = True
        chapters.setdefault(txt.parent, set()).add(txt.stem)
        yield Utterance(id=f"{spk}-{chap}-{seg}", text=" ".join(_read_text(txt).split()),
                        audio=_audio_beside(txt.parent, txt.stem), speaker=spk, source=f"{txt}:1",
                        extra={"chapter": chap, "corpus": "librispeech-long", "index": int(seg)})
    for folder, known in chapters.items():
        _check_orphans(folder, known, "<chapter>_<segment>.txt")
    if not found:
        raise ConfigError("no LibriSpeech-Long transcripts (<speaker>/<chapter>/<chapter>_<segment>.txt) under this folder", root)


_READERS = {"librispeech": _read_librispeech, "libritts": _read_libritts, "librispeech-long": _read_librispeech_long}


def chapter_order(u: Utterance) -> tuple:
    """Sort key: speaker, chapter, position in the chapter (numbers compare as numbers)."""
    idx = u.extra.get("index", 0)
    return (u.speaker or "", str(u.extra.get("chapter", "")), idx if isinstance(idx, tuple) else (idx,), u.id)


def read_corpus(root: Path, fmt: str) -> list[Utterance]:
    """All utterances of a corpus folder, sorted by speaker, chapter and position.

    Durations are left for `manifests.read_manifest` to fill from the audio headers."""
    if fmt not in _READERS:
        raise ConfigError(f"unknown corpus format {fmt!r}; expected one of {', '.join(CORPUS_FORMATS)}", root)
    root = _need_folder(root, fmt)
    return sorted(_READERS[fmt](root), key=chapter_order)


def detect_corpus(folder: Path) -> str | None:
    """The corpus layout of a folder, or None: looks a few levels down only, so that
    pointing at a big tree stays cheap."""
    folder = Path(folder)
    for depth in range(0, 5):
        pattern = "/".join(["*"] * depth + ["*.txt"]) if depth else "*.txt"
        for p in sorted(folder.glob(pattern))[:50]:
            if p.name.endswith(".trans.txt"):
                return "librispeech"
            if p.name.endswith(".normalized.txt"):
                return "libritts"
            if _LSL_STEM.match(p.stem) and p.parent.name == p.stem.split("_")[0]:
                return "librispeech-long"
    return None


__all__ = ["CORPUS_FORMATS", "chapter_order", "detect_corpus", "read_corpus"]
