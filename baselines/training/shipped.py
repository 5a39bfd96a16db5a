"""Names for the codec and MReQ tokenizer that ship with the package, so that training
configs need no absolute paths: `[codec] kind = "shipped-teacher"` and
`[tokenizer] path = "shipped-mreq"`.

They resolve through the model registry (`halle_bench.baselines.shipped`), so the
sha256 of each file is checked before training uses it.
"""

from __future__ import annotations

from pathlib import Path


def _teacher() -> Path:
    from halle_bench.baselines.shipped import teacher_dir

    return teacher_dir()


def _mreq() -> Path:
    from halle_bench.baselines.shipped import mreq_dir

    return mreq_dir()


SHIPPED = {
    "shipped-teacher": _teacher,  # the 48 Hz mel teacher codec (a codec folder: codec.json + safetensors)
    "shipped-mreq": _mreq,  # the MReQ tokenizer on it (an `MReQTokenizer.save` folder)
}


def shipped_dir(name: str) -> Path:
    """The folder of a shipped model, sha256-checked; KeyError for an unknown name and
    a MissingModelError (naming the file) when this build lacks it."""
    if name not in SHIPPED:
        raise KeyError(f"unknown shipped model {name!r} (known: {', '.join(SHIPPED)})")
    return SHIPPED[name]()


__all__ = ["SHIPPED", "shipped_dir"]
