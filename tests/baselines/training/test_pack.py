"""Token packs (training/pack.py): a training read from a pack, with no corpus audio, starts
exactly like the training read from the manifest."""

import json
import shutil
from pathlib import Path

import pytest

from halle_bench.audio import save_audio
from halle_bench.baselines.training import load_train_config, run_training
from halle_bench.baselines.training.pack import build_pack, gpu_config, main
from halle_bench.errors import ConfigError

TEXTS = {"a": "The quick brown fox jumps.", "b": "Hello there, how are you?", "c": "One two three four.",
         "d": "Seven cats sat on a mat.", "e": "Nine dogs ran home."}

CFG = '''model = "valle"
out = "ckpt/a"
[data]
manifest = "train.jsonl"
val_items = 2
[codec]
kind = "tiny"
seed = 1
fit_iters = 2
[model_config]
size = "tiny"
d_model = 32
n_heads = 2
n_layers = 1
d_ff = 64
[train]
steps = 1
batch_size = 2
lr = 1e-3
warmup = 1
log_every = 1
seed = 0
[speak]
items = 1
'''


@pytest.fixture(scope="module")
def work(tmp_path_factory, speech) -> Path:
    d = tmp_path_factory.mktemp("pack")
    with open(d / "train.jsonl", "w") as f:
        for uid, text in TEXTS.items():
            save_audio(d / f"{uid}.wav", speech(text), 16000)
            f.write(json.dumps({"id": uid, "text": text, "audio": f"{uid}.wav", "speaker": "s1"}) + "\n")
    (d / "valle.toml").write_text(CFG)
    return d


def _first_loss(out: Path, stage: str = "ar") -> float:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return next(r["loss"] for r in rows if r.get("stage") == stage and "loss" in r)


def test_pack_trains_like_the_manifest_without_audio(work, tmp_path, monkeypatch):
    # the pack (CLI) and the config that reads it, then the corpus audio is gone
    assert main([str(work / "valle.toml"), str(tmp_path / "pack"), "--speak-audio",
                 "--write-config", str(tmp_path / "gpu.toml")]) == 0
    meta = json.loads((tmp_path / "pack" / "pack.json").read_text())
    assert meta["items"] == 5 and meta["arrays"] == ["codes"] and meta["encoder"] == {"codec": "codec"}
    assert (tmp_path / "pack" / "codec" / "codec.json").exists()  # the fitted tiny codec travels with it
    assert len(meta["val_audio"]) == 2  # the speak check's held-out clip
    rows = [json.loads(x) for x in (tmp_path / "pack" / "items.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == list(TEXTS) and all(r["ids"] and r["speaker"] == "s1" for r in rows)
    gpu = (tmp_path / "gpu.toml").read_text()
    assert 'pack = "pack"' in gpu and "[speak]" not in gpu and 'manifest = "train.jsonl"' in gpu
    gpu = gpu.replace('manifest = "train.jsonl"\n', "").replace('out = "ckpt/a"', 'out = "ckpt/b"')
    (tmp_path / "gpu.toml").write_text(gpu)

    a = run_training(load_train_config(work / "valle.toml").with_overrides(steps=1))

    def no_espeak(self, texts):
        raise AssertionError(f"espeak called for {texts[:2]}")

    from halle_bench.baselines.text import TextFrontend

    monkeypatch.setattr(TextFrontend, "phonemize", no_espeak)  # the pack's training needs no espeak-ng
    b = run_training(load_train_config(tmp_path / "gpu.toml").with_overrides(steps=1))
    for stage in ("ar", "nar"):
        assert _first_loss(a, stage) == pytest.approx(_first_loss(b, stage), rel=1e-6, abs=1e-7)
    ta, tb = (json.loads((x / "training.json").read_text()) for x in (a, b))
    assert ta["codec"] == tb["codec"] and ta["validation_ids"] == tb["validation_ids"]
    assert ta["n_examples"] == tb["n_examples"] == 3


def test_a_pack_of_another_codec_is_refused(work, tmp_path):
    build_pack(load_train_config(work / "valle.toml"), tmp_path / "pack")
    (tmp_path / "x.toml").write_text(gpu_config(CFG, "pack").replace('out = "ckpt/a"', 'out = "ckpt/x"'))
    meta = json.loads((tmp_path / "pack" / "pack.json").read_text())
    meta["identity"]["weights_sha256"] = "0" * 64  # tokens of another codec than the one it carries
    (tmp_path / "pack" / "pack.json").write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match="another encoder"):
        run_training(load_train_config(tmp_path / "x.toml").with_overrides(steps=1))
    shutil.rmtree(tmp_path / "pack" / "codec")
    with pytest.raises(ConfigError, match="codec/ folder is missing"):
        run_training(load_train_config(tmp_path / "x.toml").with_overrides(steps=1))


def test_missing_pack_names_the_builder(tmp_path):
    (tmp_path / "c.toml").write_text(gpu_config(CFG, "nowhere").replace('manifest = "train.jsonl"\n', ""))
    with pytest.raises(ConfigError, match="pack.*holds no token pack"):
        run_training(load_train_config(tmp_path / "c.toml"))
    (tmp_path / "m.toml").write_text('model = "mreq"\nout = "o"\n[data]\npack = "p"\n[codec]\nkind = "tiny"\n')
    with pytest.raises(ConfigError, match="valle / halle"):
        load_train_config(tmp_path / "m.toml")


def test_clips_over_max_seconds_stay_out_but_held_out_ones_stay(work, tmp_path):
    from halle_bench.baselines.training.prepare import split_items
    from halle_bench.data import read_manifest

    (work / "short.toml").write_text(CFG.replace("val_items = 2\n", "val_items = 2\nmax_seconds = 0.01\n"))
    meta = build_pack(load_train_config(work / "short.toml"), tmp_path / "pack")
    rows = [json.loads(x)["id"] for x in (tmp_path / "pack" / "items.jsonl").read_text().splitlines()]
    _, held = split_items(read_manifest(work / "train.jsonl"), 2, 0)
    assert meta["items"] == 2 and sorted(rows) == sorted(u.id for u in held)


@pytest.mark.parametrize("name", ["pair-valle.toml", "pair-halle.toml"])
def test_the_pair_configs_become_pack_configs(tmp_path, name):
    src = Path(__file__).resolve().parents[3] / "baselines" / "training" / "configs" / name
    orig = load_train_config(src)
    (tmp_path / name).write_text(gpu_config(src.read_text(), "pack/x"))
    job = load_train_config(tmp_path / name)
    assert job.data.pack == tmp_path / "pack" / "x" and job.speak is None and orig.speak is not None
    assert (job.train, job.stages, job.model_config, job.align, job.data.max_seconds, job.data.val_items) == (
        orig.train, orig.stages, orig.model_config, orig.align, orig.data.max_seconds, orig.data.val_items)


def test_halle_pack_on_the_shipped_tokenizer_trains_like_the_manifest(work, tmp_path):
    cfg = f'''model = "halle"
out = "{tmp_path / 'h-a'}"
[data]
manifest = "{work / 'train.jsonl'}"
limit = 3
[tokenizer]
path = "shipped-mreq"
[model_config]
size = "tiny"
d_model = 32
n_heads = 2
n_layers = 1
d_ff = 64
[train]
steps = 1
batch_size = 2
warmup = 1
log_every = 1
'''
    (tmp_path / "h.toml").write_text(cfg)
    main([str(tmp_path / "h.toml"), str(tmp_path / "hpack"), "--write-config", str(tmp_path / "hp.toml")])
    meta = json.loads((tmp_path / "hpack" / "pack.json").read_text())
    assert meta["arrays"] == ["ar", "nar"] and meta["encoder"] == {"tokenizer": None}  # shipped: not copied
    (tmp_path / "hp.toml").write_text((tmp_path / "hp.toml").read_text().replace("h-a", "h-b"))
    a = run_training(load_train_config(tmp_path / "h.toml"))
    b = run_training(load_train_config(tmp_path / "hp.toml"))
    for stage in ("ar", "nar"):
        assert _first_loss(a, stage) == pytest.approx(_first_loss(b, stage), rel=1e-6, abs=1e-7)
