"""Text normalisers for WER, named and versioned: the normaliser is part of the metric.

`get_normalizer(name)` returns a `Normalizer` (callable, with `.name` and `.version`);
both go into every score row so a number can be traced to the exact text rules.

- ``whisper-en``: openai-whisper's `EnglishTextNormalizer` (numbers to digits,
  British to American spelling, contractions expanded, fillers dropped). Its version
  includes the installed whisper version, because its rules change between releases.
- ``seed-tts-eval``: the rules of seed-tts-eval's `run_wer.py` for English: delete
  every ASCII and CJK punctuation mark *except the ASCII apostrophe*, lower-case,
  collapse whitespace. Like the original, marks are deleted, not replaced by a space,
  so "twenty-five" becomes "twentyfive" and "e-mail" "email"; the typographic
  apostrophe (’) is in its CJK punctuation list and is deleted too ("don’t" ->
  "dont"), while "don't" stays. Numbers are not spelled out ("50" vs "fifty" is an
  error), exactly as in the original.
- ``f5``: F5-TTS's `eval_utils`: as seed-tts-eval, and the ASCII apostrophe is deleted
  as well ("don't" -> "dont").
- ``none``: the text as given, with runs of whitespace collapsed (whitespace never
  matters to a word-level alignment, so this changes no WER).

Where the originals only replace double spaces once, we collapse all whitespace: the
word sequences (and so WER) are the same, only the stored strings are tidier.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

# zhon.hanzi.punctuation (the CJK list seed-tts-eval and F5 add to string.punctuation),
# written out so we need not depend on zhon.
_CJK_PUNCT = (
    "＂＃＄％＆＇（）＊＋，－／：；＜＝＞＠［＼］＾＿｀｛｜｝～｟｠｢｣､　、〃〈〉《》「」『』【】〔〕〖〗〘〙〚〛〜〝〞〟〰〾〿–—‘’‛“”„‟…‧﹏﹑﹔·"
    "！？｡。"
)
_ALL_PUNCT = string.punctuation + _CJK_PUNCT


@dataclass(frozen=True)
class Normalizer:
    name: str
    version: str
    fn: Callable[[str], str]

    def __call__(self, text: str) -> str:
        return self.fn(text)

    @property
    def id(self) -> str:
        """`name@version`, the form stored in rows and cache keys."""
        return f"{self.name}@{self.version}"


def _collapse(text: str) -> str:
    return " ".join(text.split())


def _delete_chars(chars: str) -> Callable[[str], str]:
    table = str.maketrans("", "", chars)

    def fn(text: str) -> str:
        return _collapse(text.translate(table).lower())

    return fn


def _whisper_en() -> Normalizer:
    import whisper
    from whisper.normalizers import EnglishTextNormalizer

    norm = EnglishTextNormalizer()
    return Normalizer("whisper-en", f"1+whisper{whisper.__version__}", lambda t: _collapse(norm(t)))


_FACTORIES: dict[str, Callable[[], Normalizer]] = {
    "whisper-en": _whisper_en,
    "seed-tts-eval": lambda: Normalizer("seed-tts-eval", "1", _delete_chars(_ALL_PUNCT.replace("'", ""))),
    "f5": lambda: Normalizer("f5", "1", _delete_chars(_ALL_PUNCT)),
    "none": lambda: Normalizer("none", "1", _collapse),
}


def normalizer_names() -> list[str]:
    return sorted(_FACTORIES)


@lru_cache(maxsize=None)
def get_normalizer(name: str) -> Normalizer:
    """The named normaliser; an unknown name raises ValueError listing the known ones."""
    if name not in _FACTORIES:
        raise ValueError(f"unknown normalizer {name!r}; known: {', '.join(normalizer_names())}")
    return _FACTORIES[name]()
