"""The codecs shipped inside the package (baselines/checkpoints/mel48/), in the model registry.

| model             | file (under halle_bench/baselines/checkpoints/mel48/) | what                         |
|-------------------|-------------------------------------------------------|------------------------------|
| codec-mel48       | mreq/codec/codec.safetensors | 48 Hz mel teacher (0-8 kHz, 43 ms window), 8 x 1024 residual k-means (3.84 kbps) |
| mrvq-mel48        | mreq/mrvq.safetensors        | MRVQ 8/16/24/48 Hz on that teacher, Quant 2/1/1/4 (2.48 kbps; 8-24 Hz: 0.56) |
| codec-mel8-naive  | naive8/codec.safetensors     | the same front end fitted directly at 8 Hz (1.01 kbps)    |

All three are rebuilt by `halle-bench train baselines/checkpoints/codec_mel48.toml`
(espeak-ng speech, seeded); their sha256 are checked on every load and by
`halle-bench models verify`. The teacher is stored once, inside the MReQ tokenizer folder.
"""

from __future__ import annotations

from pathlib import Path

from halle_bench.models import ModelSpec, register_model, resolve

_PKG = "halle_bench.baselines"
_DIR = "checkpoints/mel48"
_HOW = ("reinstall halle-bench (the file ships inside the package), or rebuild it with "
        "`halle-bench train baselines/checkpoints/codec_mel48.toml`")


def _spec(name: str, rel: str, sha: str, desc: str) -> ModelSpec:
    return register_model(ModelSpec(name=name, backend="halle-bench-codec", filename=Path(rel).name, description=desc,
                                    package="halle_bench", package_files=(f"{_PKG}:{_DIR}/{rel}",), sha256=sha,
                                    licence="MIT (trained here on espeak-ng speech)", how_to_get=_HOW))


CODEC_MEL48 = _spec("codec-mel48", "mreq/codec/codec.safetensors",
                    "b3e8eda496e803570b9ed8670befa5378f081d1b42c9f5b81877edd790aa6e7d",
                    "shipped 48 Hz MReQ teacher: 0-8 kHz log-mel (43 ms) + 8 x 1024 residual k-means + Griffin-Lim (3.84 kbps)")
MRVQ_MEL48 = _spec("mrvq-mel48", "mreq/mrvq.safetensors",
                   "3bb91adb2d3ce4bb3b4d2bf1ee9224fba686b3958b59b864c33b3a0793edd2df",
                   "shipped MRVQ (8/16/24/48 Hz, Quant 2/1/1/4 x 1024, 2.48 kbps) distilled from codec-mel48")
CODEC_MEL8_NAIVE = _spec("codec-mel8-naive", "naive8/codec.safetensors",
                         "cd7a3782d0fa8d3b09fbac9210267c1b405f64e72b9967e35b3a095f90a3507d",
                         "the mel codec fitted directly at 8 Hz (21 x 64 codes, 1.01 kbps): Table 3's naive row")


# The trained VALL-E / HALL-E pair: `scripts/train-pair.sh WORK --ship` writes
# checkpoints/pair/{valle,halle}/ (fp16, naming the codec and tokenizer above) and prints the
# sha256 of each model.safetensors to record here, which registers `valle-pair` / `halle-pair`
# for `halle-bench run --demo paper`. Empty: the pair trained so far does not speak
# (results/pair/), and a model that babbles is not shipped as if it worked.
PAIR_SHA256: dict[str, str] = {}


def pair_spec(system: str, sha: str) -> ModelSpec:
    return register_model(ModelSpec(
        name=f"{system}-pair", backend="halle-bench-lm", filename="model.safetensors",
        description=f"the shipped {system} of the trained pair (espeak-ng speech; results/pair/)",
        package="halle_bench", package_files=(f"{_PKG}:checkpoints/pair/{system}/model.safetensors",), sha256=sha,
        licence="MIT (trained here on espeak-ng speech)",
        how_to_get="reinstall halle-bench, or rebuild it with `bash scripts/train-pair.sh WORK --ship`"))


PAIR = {system: pair_spec(system, sha) for system, sha in PAIR_SHA256.items()}


def _folder(spec: ModelSpec) -> Path:
    return resolve(spec).parent  # resolve checks the sha256


def teacher_dir() -> Path:
    return _folder(CODEC_MEL48)


def mreq_dir() -> Path:
    _folder(CODEC_MEL48)
    return _folder(MRVQ_MEL48)


def naive_dir() -> Path:
    return _folder(CODEC_MEL8_NAIVE)


def load_teacher(device: str = "cpu"):
    from .codec_api import load_codec

    return load_codec(teacher_dir()).to(device)


def load_mreq(device: str = "cpu"):
    from .mreq_tokenizer import MReQTokenizer

    return MReQTokenizer.load(mreq_dir(), device)


def load_naive(device: str = "cpu"):
    from .codec_api import load_codec

    return load_codec(naive_dir()).to(device)


__all__ = ["PAIR", "PAIR_SHA256", "pair_spec", "CODEC_MEL48", "MRVQ_MEL48", "CODEC_MEL8_NAIVE", "load_teacher", "load_mreq", "load_naive",
           "teacher_dir", "mreq_dir", "naive_dir"]
