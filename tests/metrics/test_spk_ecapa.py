"""ECAPA (speechbrain spkrec-ecapa-voxceleb layout) loader, with random weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from halle_bench.errors import MissingModelError
from halle_bench.metrics.base import ScoreItem
from halle_bench.metrics.speaker import CheckpointError, SpeakerSimilarity
from halle_bench.metrics.spk_ecapa import EcapaEncoder, EcapaHparams, build_embedding_model, read_hparams

SR = 16000

# The published file's shape, shrunk (channels) so the test is fast.
HPARAMS = """\
# ############################################################################
# Model: ECAPA big for Speaker verification (test copy, small channels)
# ############################################################################
n_mels: 80
pretrained_path: speechbrain/spkrec-ecapa-voxceleb
out_n_neurons: 7205

compute_features: !new:speechbrain.lobes.features.Fbank
    n_mels: !ref <n_mels>

mean_var_norm: !new:speechbrain.processing.features.InputNormalization
    norm_type: sentence
    std_norm: False

embedding_model: !new:speechbrain.lobes.models.ECAPA_TDNN.ECAPA_TDNN
    input_size: !ref <n_mels>
    channels: [64, 64, 64, 64, 192]
    kernel_sizes: [5, 3, 3, 3, 1]
    dilations: [1, 2, 3, 4, 1]
    attention_channels: 16
    lin_neurons: 24

classifier: !new:speechbrain.lobes.models.ECAPA_TDNN.Classifier
    input_size: 24
    out_neurons: !ref <out_n_neurons>

mean_var_norm_emb: !new:speechbrain.processing.features.InputNormalization
    norm_type: global
    std_norm: False

modules:
    compute_features: !ref <compute_features>
    mean_var_norm: !ref <mean_var_norm>
    embedding_model: !ref <embedding_model>
    mean_var_norm_emb: !ref <mean_var_norm_emb>
    classifier: !ref <classifier>

label_encoder: !new:speechbrain.dataio.encoder.CategoricalEncoder

pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer
    loadables:
        embedding_model: !ref <embedding_model>
    paths:
        embedding_model: !ref <pretrained_path>/embedding_model.ckpt
"""


def _random_model(hp: EcapaHparams, seed: int = 0):
    torch.manual_seed(seed)
    m = build_embedding_model(hp)
    # Non-trivial BatchNorm statistics, so loading them is actually checked.
    for name, buf in m.named_buffers():
        if name.endswith("running_mean"):
            buf.normal_(0, 0.1)
        elif name.endswith("running_var"):
            buf.uniform_(0.5, 1.5)
    return m.eval()


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "spkrec-ecapa-voxceleb"
    d.mkdir()
    (d / "hyperparams.yaml").write_text(HPARAMS)
    hp = read_hparams(d / "hyperparams.yaml")
    model = _random_model(hp)
    torch.save(model.state_dict(), d / "embedding_model.ckpt")
    (d / "label_encoder.txt").write_text("'id10001' => 0\n")
    return d, model, hp


def test_read_hparams(folder):
    _, _, hp = folder
    assert hp.n_mels == 80 and hp.channels == (64, 64, 64, 64, 192)
    assert hp.attention_channels == 16 and hp.lin_neurons == 24 and hp.sentence_norm and not hp.std_norm


def test_default_hparams_are_the_published_ones():
    hp = EcapaHparams()
    assert hp.channels == (1024, 1024, 1024, 1024, 3072) and hp.lin_neurons == 192 and hp.n_mels == 80


def test_loaded_equals_direct_model(folder, speech):
    d, model, hp = folder
    enc = EcapaEncoder.from_folder(d)
    x = speech("Speaker verification with a randomly initialised network.")
    from speechbrain.lobes.features import Fbank
    from speechbrain.processing.features import InputNormalization

    with torch.no_grad():
        wav = torch.from_numpy(x)[None]
        feats = InputNormalization(norm_type="sentence", std_norm=False)(Fbank(n_mels=80)(wav), torch.ones(1))
        want = model(feats, torch.ones(1)).squeeze().numpy()
    got = enc.embed_windows([x])[0]
    assert got.shape == (24,)
    assert np.allclose(got, want, atol=1e-5)


def test_strict_keys(folder, tmp_path):
    d, model, _ = folder
    state = model.state_dict()
    dropped = next(iter(state))
    state.pop(dropped)
    state["blocks.99.conv.weight"] = torch.zeros(1)
    torch.save(state, d / "embedding_model.ckpt")
    with pytest.raises(CheckpointError) as ei:
        EcapaEncoder.from_folder(d)
    msg = str(ei.value)
    assert dropped in msg and "blocks.99.conv.weight" in msg and "embedding_model.ckpt" in msg


def test_shape_mismatch_is_reported(folder):
    d, model, _ = folder
    (d / "hyperparams.yaml").write_text(HPARAMS.replace("lin_neurons: 24", "lin_neurons: 32"))
    with pytest.raises(CheckpointError, match="shape"):
        EcapaEncoder.from_folder(d)


def test_corrupt_and_missing(folder, tmp_path):
    d, _, _ = folder
    (d / "embedding_model.ckpt").write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="cannot read"):
        EcapaEncoder.from_folder(d)
    with pytest.raises(MissingModelError, match="embedding_model.ckpt"):
        EcapaEncoder.from_folder(tmp_path / "empty")


def test_scorer_with_ecapa_folder(folder, speech):
    d, _, _ = folder
    sc = SpeakerSimilarity({"model": "ecapa", "model_path": str(d), "window_seconds": 2.0})
    sc.load("cpu")
    (ref,) = sc.models()
    assert ref.name == "ecapa" and ref.path.endswith("embedding_model.ckpt") and len(ref.sha256) == 64
    a = speech("One two three four five six seven eight.")
    b = speech("Nine ten eleven twelve thirteen fourteen.", voice="en-us+f3")
    items = [ScoreItem("s", "1", audio=a, prompt=a.copy(), reference=b), ScoreItem("s", "2", audio=b, prompt=a, reference=b)]
    out = sc.score(items)
    assert out[0].values["sim"] == pytest.approx(1.0, abs=1e-6) and out[0].values["sim_model"] == "ecapa"
    # batch vs per item
    sc._cache.clear()
    single = sc.score([items[1]])[0]
    assert abs(single.values["sim"] - out[1].values["sim"]) < 1e-5
    assert abs(out[1].values["sim_ref"] - 1.0) < 1e-6
