"""Names for the codec and MReQ tokenizer that ship with the package (the codec branch's
weights under `baselines/checkpoints/`), so that training configs need no absolute paths:
`[codec] kind = "shipped-teacher"` and `[tokenizer] path = "shipped-mreq"`.

The folder names are the one place to wire when those weights land (`SHIPPED`).
"""

from __future__ import annotations

from pathlib import Path

CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"
SHIPPED = {
    "shipped-teacher": "teacher-48hz",  # the 48 Hz teacher codec (a `Codec.save` folder)
    "shipped-mreq": "mreq-48hz",  # the MReQ tokenizer on it (an `MReQTokenizer.save` folder)
}


def shipped_dir(name: str) -> Path:
    """The folder of a shipped model; FileNotFoundError (naming it) when this build lacks it."""
    if name not in SHIPPED:
        raise KeyError(f"unknown shipped model {name!r} (known: {', '.join(SHIPPED)})")
    p = CHECKPOINTS / SHIPPED[name]
    if not p.is_dir():
        raise FileNotFoundError(f"the shipped model {name!r} is not in this build: {p} does not exist")
    return p


__all__ = ["SHIPPED", "CHECKPOINTS", "shipped_dir"]
