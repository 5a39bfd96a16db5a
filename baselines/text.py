"""Text frontend: English text -> IPA phonemes (phonemizer's espeak backend) -> ids.

The symbol table is fixed and versioned (`SYMBOLS_V1`, "espeak-ipa-v1") and saved with
every checkpoint, so a checkpoint keeps the ids it was trained with even if this module
later grows a v2 table.

Decisions:
- espeak-ng en-us, stress marks kept (as their own symbols, `ˈ` `ˌ`), phones separated by
  espeak (`|`), words by a space symbol. Each phone is split into table symbols by
  greedy longest match, so multi-letter phones such as `tʃ`, `aɪ`, `oʊ` are one symbol and
  any IPA string still tokenises character by character.
- Punctuation is preserved by phonemizer and kept as symbols (pauses and prosody depend on
  it). The apostrophe is *not* a punctuation mark here: espeak reads "it's" as one word.
- Unknown symbols are never dropped silently: `on_unknown="error"` raises
  UtteranceError naming them; `on_unknown="unk"` (default) maps them to `<unk>` and
  counts them in the result (`Encoded.unknown`) so callers can report them.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from halle_bench.errors import UtteranceError

VERSION = "espeak-ipa-v1"
UNK = "<unk>"
WORD = " "
PUNCTUATION = tuple(';:,.!?¡¿—…"«»“”()-')
_SINGLE = tuple(
    "abcdefghijklmnopqrstuvwxyz"
    "æçðøŋœɐɑɒɔɕɘəɚɛɜɝɞɟɡɣɤɥɨɪɬɭɮɯɰɲɳɴɵɸɹɺɻɽɾʀʁʂʃʈʉʊʋʌʍʎʏʐʑʒʔʕʝʟβθχ"
    "ʰʲʷˈˌːˑ̩̪̃ᵻ"
)
_MULTI = (
    "aɪ", "aʊ", "eɪ", "oʊ", "ɔɪ", "tʃ", "dʒ", "iː", "uː", "ɑː", "ɔː", "ɜː", "ɪə", "ʊə", "eə",
    "ɛɹ", "ɪɹ", "ʊɹ", "ɑːɹ", "ɔːɹ", "oːɹ", "aɪɚ", "aɪə", "aʊɚ", "əl", "iə", "oː", "ɛː", "ɐɹ",
)
SYMBOLS_V1: tuple[str, ...] = (UNK, WORD, *PUNCTUATION, *_SINGLE, *_MULTI)


@dataclass(frozen=True)
class Encoded:
    ids: list[int]
    symbols: list[str]
    phonemes: str  # the phonemizer output the ids come from
    unknown: Counter = field(default_factory=Counter)  # unknown symbol -> count


class TextFrontend:
    """Text to phoneme ids with a fixed symbol table. Thread-safe; espeak loaded once."""

    def __init__(self, symbols: tuple[str, ...] | list[str] = SYMBOLS_V1, version: str = VERSION,
                 language: str = "en-us", on_unknown: str = "unk"):
        if on_unknown not in ("unk", "error"):
            raise ValueError("on_unknown must be 'unk' or 'error'")
        if len(set(symbols)) != len(symbols):
            raise ValueError("symbol table has duplicates")
        if UNK not in symbols:
            raise ValueError(f"symbol table needs {UNK!r}")
        self.symbols = tuple(symbols)
        self.version = version
        self.language = language
        self.on_unknown = on_unknown
        self.index = {s: i for i, s in enumerate(self.symbols)}
        self._max_len = max(len(s) for s in self.symbols if s != UNK)
        self._backend = None
        self._lock = threading.Lock()

    @property
    def vocab_size(self) -> int:
        return len(self.symbols)

    # ------------------------------------------------------------ serialise
    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "language": self.language, "symbols": list(self.symbols)}

    @classmethod
    def from_dict(cls, d: dict[str, Any], on_unknown: str = "unk") -> "TextFrontend":
        return cls(tuple(d["symbols"]), d["version"], d.get("language", "en-us"), on_unknown)

    # ------------------------------------------------------------ phonemize
    def _espeak(self):
        if self._backend is None:
            from phonemizer.backend import EspeakBackend

            self._backend = EspeakBackend(
                self.language, preserve_punctuation=True, with_stress=True,
                punctuation_marks="".join(PUNCTUATION),
            )
        return self._backend

    def phonemize(self, texts: list[str]) -> list[str]:
        """IPA with `|` between phones and spaces between words."""
        from phonemizer.separator import Separator

        with self._lock:
            return self._espeak().phonemize(list(texts), separator=Separator(phone="|", word=" ", syllable=""), strip=True)

    # ------------------------------------------------------------- tokenise
    def tokenize_phonemes(self, phonemes: str) -> tuple[list[str], Counter]:
        """Split a phonemizer string into table symbols; unknown characters become UNK."""
        out: list[str] = []
        unknown: Counter = Counter()
        words = [w for w in phonemes.split(" ") if w]
        for wi, word in enumerate(words):
            if wi:
                out.append(WORD)
            for phone in word.split("|"):
                i = 0
                while i < len(phone):
                    for n in range(min(self._max_len, len(phone) - i), 0, -1):
                        piece = phone[i : i + n]
                        if piece in self.index:
                            out.append(piece)
                            i += n
                            break
                    else:
                        unknown[phone[i]] += 1
                        out.append(UNK)
                        i += 1
        return out, unknown

    def encode_batch(self, texts: list[str]) -> list[Encoded]:
        for t in texts:
            if not t or not t.strip():
                raise UtteranceError("empty text")
        results = []
        for text, ph in zip(texts, self.phonemize(texts)):
            syms, unknown = self.tokenize_phonemes(ph)
            if unknown and self.on_unknown == "error":
                raise UtteranceError(f"text {text[:60]!r}: symbols not in table {self.version}: {dict(unknown)}")
            if not syms:
                raise UtteranceError(f"text {text[:60]!r} has no pronounceable content")
            results.append(Encoded([self.index[s] for s in syms], syms, ph, unknown))
        return results

    def encode(self, text: str) -> Encoded:
        return self.encode_batch([text])[0]

    def prompt_and_target_ids(self, text: str, prompt_text: str | None = None) -> list[int]:
        """The LM's text input: the prompt's transcript (when known) then the target text,
        joined by a word boundary, as VALL-E's continuation setting reads them."""
        if not text or not text.strip():
            raise UtteranceError("empty target text")
        parts = [t for t in (prompt_text, text) if t and t.strip()]
        ids: list[int] = []
        for e in self.encode_batch(parts):
            if ids:
                ids.append(self.index[WORD])
            ids.extend(e.ids)
        return ids
