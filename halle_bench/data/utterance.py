"""The `Utterance`: one item of a benchmark set."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

# Speaking rate used to estimate a duration from text when there is no reference
# audio (bucket assignment only). 2.5 words/s is typical of read/podcast English.
WORDS_PER_SECOND = 2.5


@dataclass(frozen=True)
class Utterance:
    """One benchmark item.

    `duration` is the reference audio's length in seconds, or an estimate from the
    word count when there is none: `duration_source` says which ("audio",
    "manifest" or "text-estimate"). `prompt_from_reference` is true when the prompt
    was cut from this utterance's own reference audio (the `head` policy): the
    similarity scorer must then not compare against the reference's prompt part.
    `prompt_start`/`prompt_end` give that cut in seconds (None: the whole file).

    >>> u = Utterance(id="a", text="hello world")
    >>> u.word_count
    2
    """

    id: str
    text: str
    audio: Path | None = None  # reference (ground-truth) audio
    duration: float | None = None
    duration_source: str = "unknown"
    speaker: str | None = None
    prompt_audio: Path | None = None
    prompt_text: str | None = None
    prompt_start: float | None = None
    prompt_end: float | None = None
    prompt_from_reference: bool = False
    bucket: str | None = None
    source: str | None = None  # "file:line" of the manifest row, for error messages
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def word_count(self) -> int:
        return len(self.text.split())

    def with_(self, **kw: Any) -> "Utterance":
        return replace(self, **kw)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("audio", "prompt_audio"):
            if d[k] is not None:
                d[k] = str(d[k])
        return d
