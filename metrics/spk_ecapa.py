"""speechbrain's ECAPA-TDNN speaker encoder (`spkrec-ecapa-voxceleb`) from a local folder.

The folder has the Hugging Face layout: `hyperparams.yaml`, `embedding_model.ckpt`,
`mean_var_norm_emb.ckpt`, `classifier.ckpt`, `label_encoder.txt`. We never call
speechbrain's pretrained interface (it fetches files and may reach the network): we build
the three modules `EncoderClassifier.encode_batch` uses, load `embedding_model.ckpt` with
`torch.load(weights_only=True)` and a strict key check, and run them the same way:

    feats = Fbank(n_mels)(wav)                                  # log-mel, 25 ms / 10 ms
    feats = InputNormalization("sentence", std_norm=False)(feats)  # per-utterance mean removal
    emb   = ECAPA_TDNN(...)(feats)                              # (B, 1, 192)

Only `embedding_model.ckpt` is needed. `encode_batch` and `SpeakerRecognition.verify_batch`
compare embeddings *without* `mean_var_norm_emb` (normalize=False is their default), so
that file and the classifier are not used; they are listed in the model spec for completeness.

Hyper-parameters come from `hyperparams.yaml` when present (speechbrain's YAML tags such as
`!new:` and `!ref <n_mels>` are read with a small tolerant loader, only the numbers we need
are taken); otherwise the published spkrec-ecapa-voxceleb values below are used.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from halle_bench.errors import CheckpointError, MissingModelError
from halle_bench.weights import load_state_strict, torch_load

from .spk_registry import register_speaker_model
from .spk_windows import run_grouped

EMBEDDING_FILE = "embedding_model.ckpt"
HPARAMS_FILE = "hyperparams.yaml"


@dataclass(frozen=True)
class EcapaHparams:
    """spkrec-ecapa-voxceleb's published values (the defaults)."""

    n_mels: int = 80
    channels: tuple[int, ...] = (1024, 1024, 1024, 1024, 3072)
    kernel_sizes: tuple[int, ...] = (5, 3, 3, 3, 1)
    dilations: tuple[int, ...] = (1, 2, 3, 4, 1)
    attention_channels: int = 128
    lin_neurons: int = 192
    res2net_scale: int = 8
    se_channels: int = 128
    global_context: bool = True
    sentence_norm: bool = True  # mean_var_norm: norm_type sentence
    std_norm: bool = False
    source: str = field(default="defaults", compare=False)


class _Ref(str):
    """A `!ref <name>` value, resolved against the file's top-level keys."""


def _yaml_loader():
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def any_tag(loader, suffix, node):
        if isinstance(node, yaml.MappingNode):
            d = loader.construct_mapping(node, deep=True)
            d["__tag__"] = suffix
            return d
        if isinstance(node, yaml.SequenceNode):
            return loader.construct_sequence(node, deep=True)
        value = loader.construct_scalar(node)
        return _Ref(value) if suffix == "ref" else value

    Loader.add_multi_constructor("!", lambda loader, suffix, node: any_tag(loader, suffix, node))
    return Loader


def read_hparams(path: str | Path) -> EcapaHparams:
    """The numbers we need from a speechbrain `hyperparams.yaml`."""
    import yaml

    p = Path(path)
    try:
        doc = yaml.load(p.read_text(), Loader=_yaml_loader())  # noqa: S506 (SafeLoader subclass)
    except Exception as e:
        raise CheckpointError(f"ecapa: cannot parse {p}: {e}") from None
    if not isinstance(doc, dict):
        raise CheckpointError(f"ecapa: {p} is not a YAML mapping")

    def resolve(v: Any) -> Any:
        if isinstance(v, _Ref):
            name = v.strip().strip("<>")
            if name not in doc:
                raise CheckpointError(f"ecapa: {p}: unresolved reference {v!r}")
            return resolve(doc[name])
        if isinstance(v, list):
            return [resolve(x) for x in v]
        return v

    def find(cls_suffix: str, key: str | None = None) -> dict:
        if key and isinstance(doc.get(key), dict):
            return doc[key]
        for v in doc.values():
            if isinstance(v, dict) and str(v.get("__tag__", "")).endswith(cls_suffix):
                return v
        return {}

    model = find("ECAPA_TDNN.ECAPA_TDNN", "embedding_model")
    if not model:
        raise CheckpointError(f"ecapa: {p} defines no speechbrain ECAPA_TDNN embedding_model")
    norm = find("InputNormalization", "mean_var_norm")
    base = EcapaHparams()
    values: dict[str, Any] = {}
    for f in fields(EcapaHparams):
        if f.name in ("n_mels", "sentence_norm", "std_norm", "source"):
            continue
        if f.name in model:
            v = resolve(model[f.name])
            values[f.name] = tuple(int(x) for x in v) if isinstance(v, list) else type(getattr(base, f.name))(v)
    n_mels = resolve(model.get("input_size", base.n_mels))
    norm_type = str(resolve(norm.get("norm_type", "sentence")))
    std = resolve(norm.get("std_norm", base.std_norm))
    return EcapaHparams(
        n_mels=int(n_mels),
        sentence_norm=norm_type == "sentence",
        std_norm=bool(std),
        source=str(p),
        **values,
    )


def build_embedding_model(hp: EcapaHparams):
    from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN

    return ECAPA_TDNN(
        input_size=hp.n_mels,
        lin_neurons=hp.lin_neurons,
        channels=list(hp.channels),
        kernel_sizes=list(hp.kernel_sizes),
        dilations=list(hp.dilations),
        attention_channels=hp.attention_channels,
        res2net_scale=hp.res2net_scale,
        se_channels=hp.se_channels,
        global_context=hp.global_context,
    )


@register_speaker_model("ecapa")
class EcapaEncoder:
    """Thin owner of the loaded ECAPA-TDNN; implements `spk_registry.SpeakerEncoder`."""

    name = "ecapa"

    def __init__(self, model, hp: EcapaHparams, device: str = "cpu", batch: int = 64):
        from speechbrain.lobes.features import Fbank
        from speechbrain.processing.features import InputNormalization

        self.hp = hp
        self.device = device
        self.batch = batch
        self.model = model.to(device).eval()
        self.fbank = Fbank(n_mels=hp.n_mels).to(device).eval()
        self.norm = InputNormalization(norm_type="sentence" if hp.sentence_norm else "global", std_norm=hp.std_norm)
        if not hp.sentence_norm:
            raise CheckpointError("ecapa: only sentence-level input normalisation is supported (as spkrec-ecapa-voxceleb)")

    @classmethod
    def from_folder(cls, folder: str | Path, device: str = "cpu", batch: int = 64) -> "EcapaEncoder":
        d = Path(folder).expanduser()
        ckpt = d / EMBEDDING_FILE
        if not ckpt.exists():
            raise MissingModelError(
                f"model 'ecapa': {ckpt} not found; the folder must hold speechbrain/spkrec-ecapa-voxceleb's files "
                f"({HPARAMS_FILE}, {EMBEDDING_FILE}, ...). Give the folder as model_path in [metrics] sim."
            )
        hp = read_hparams(d / HPARAMS_FILE) if (d / HPARAMS_FILE).exists() else EcapaHparams()
        state = torch_load(ckpt, "ecapa")
        if not isinstance(state, dict):
            raise CheckpointError(f"ecapa: {ckpt} holds a {type(state).__name__}, not a state dict")
        model = build_embedding_model(hp)
        load_state_strict(model, state, "ecapa", ckpt)
        return cls(model, hp, device=device, batch=batch)

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu", batch: int = 64) -> "EcapaEncoder":
        """`path` is the folder's embedding_model.ckpt (spk_registry.weights_path)."""
        return cls.from_folder(Path(path).parent, device=device, batch=batch)

    def prepare(self, audio: np.ndarray) -> np.ndarray:
        return np.asarray(audio, dtype=np.float32)  # speechbrain applies no trimming or gain

    def _forward(self, wavs: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(wavs, dtype=np.float32)).to(self.device)
            lens = torch.ones(x.shape[0], device=self.device)
            feats = self.norm(self.fbank(x), lens)
            return self.model(feats, lens).squeeze(1).cpu().numpy()

    def embed_windows(self, windows: list[np.ndarray]) -> np.ndarray:
        return run_grouped(windows, self._forward, self.batch)
