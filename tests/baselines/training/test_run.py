"""`halle-bench train` library: config parsing, VALL-E / MReQ / HALL-E training through the
config, resume, and the trained checkpoints running as systems through the harness."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from halle_bench.audio import save_audio
from halle_bench.errors import ConfigError
from halle_bench.baselines.training import load_train_config, run_training

TEXTS = {"a": "The quick brown fox jumps.", "b": "Hello there, how are you?", "c": "One two three four."}
SR = 16000
# A 48 Hz tiny teacher at 4.8 kHz (hop 100) keeps MReQ training cheap on CPU.
MREQ_CODEC = 'kind = "tiny"\nsample_rate = 4800\nratios = [5, 4, 5]\nfit_iters = 2\n'
TINY = 'size = "tiny"\nd_model = 32\nn_heads = 2\nn_layers = 1\nd_ff = 64\n'


@pytest.fixture(scope="module")
def work(tmp_path_factory, speech) -> Path:
    d = tmp_path_factory.mktemp("train")
    with open(d / "train.jsonl", "w") as f:
        for uid, text in TEXTS.items():
            save_audio(d / f"{uid}.wav", speech(text, sr=SR), SR)
            f.write(json.dumps({"id": uid, "text": text, "audio": f"{uid}.wav"}) + "\n")
    return d


def write(d: Path, name: str, body: str) -> Path:
    p = d / name
    p.write_text(body)
    return p


def valle_cfg(steps: int) -> str:
    return f'''model = "valle"
out = "ckpt/valle"
[data]
manifest = "train.jsonl"
format = "jsonl"
[codec]
kind = "tiny"
seed = 1
fit_iters = 3
[model_config]
{TINY}
[train]
steps = {steps}
batch_size = 2
lr = 1e-3
warmup = 1
seed = 0
log_every = 1
'''


@pytest.fixture(scope="module")
def valle_ckpt(work) -> Path:
    logs: list[str] = []

    class Rep:
        def log(self, msg):
            logs.append(msg)

    out = run_training(load_train_config(write(work, "valle.toml", valle_cfg(3))), Rep())
    assert any("valle ar] step 3" in m for m in logs) and any("valle nar] step 3" in m for m in logs)
    return out


def _steps(ckpt: Path) -> dict:
    return json.loads((ckpt / "config.json").read_text())["extra"]["step"]


def test_valle_trains_loads_and_resumes(work, valle_ckpt):
    import numpy as np

    from halle_bench.baselines.training.shards import TokenStore, WavHasher, store_id
    from halle_bench.baselines.valle import VALLE

    assert valle_ckpt == (work / "ckpt" / "valle").resolve()
    v = VALLE.load(valle_ckpt)
    assert v.codec.cfg.name == "tiny" and v.ar.cfg.transformer.d_model == 32 and v.nar.cfg.transformer.n_layers == 1
    assert _steps(valle_ckpt) == {"ar": 3, "nar": 3}
    # the fitted codec is kept and its tokens cached: three distinct utterances, varied codes
    sha = WavHasher(valle_ckpt / "tokens" / "wav_sha256.json").sha256(work / "a.wav")
    store = TokenStore(valle_ckpt / "tokens" / store_id({"tokens": "codec", **v.codec.identity()}))
    codes = np.asarray(store.get(sha, "codes"))
    assert codes.shape[0] == 8 and len(set(codes[0].tolist())) > 3
    w3 = {k: t.clone() for k, t in v.lm.state_dict().items()}

    # more steps on the same folder: continues from step 3, does not restart
    job = load_train_config(work / "valle.toml").with_overrides(steps=5)
    logs: list[str] = []

    class Rep:
        def log(self, msg):
            logs.append(msg)

    run_training(job, Rep())
    assert any("tokens: 0 encoded, 3 reused, 0 wavs hashed" in m for m in logs), logs
    assert _steps(valle_ckpt) == {"ar": 5, "nar": 5}
    meta = json.loads((valle_ckpt / "train" / "ar" / "last" / "config.json").read_text())
    assert meta["extra"]["step"] == 5 and (valle_ckpt / "train" / "ar" / "step-0000003").is_dir()
    hist = json.loads((valle_ckpt / "train" / "ar" / "last" / "train_state.json").read_text())["history"]
    assert [h["step"] for h in hist] == [1, 2, 3, 4, 5]  # one history, not two runs from step 1
    v5 = VALLE.load(valle_ckpt)
    assert any(not torch.equal(w3[k], t) for k, t in v5.lm.state_dict().items())
    summary = json.loads((valle_ckpt / "training.json").read_text())
    assert summary["model"] == "valle" and summary["n_examples"] == 3


@pytest.fixture(scope="module")
def mreq_tok(work) -> Path:
    cfg = f'''model = "mreq"
out = "ckpt/mreq"
[data]
manifest = "train.jsonl"
[codec]
{MREQ_CODEC}
[model_config]
size = "tiny"
[train]
steps = 3
batch_size = 2
segment_blocks = 4
seed = 0
'''
    return run_training(load_train_config(write(work, "mreq.toml", cfg)))


def test_mreq_tokenizer_loads(work, mreq_tok, speech):
    from halle_bench.baselines.mreq_tokenizer import MReQTokenizer

    tok = MReQTokenizer.load(mreq_tok)
    assert tok.rates == (8, 16, 24, 48) and tok.sample_rate == 4800
    state = torch.load(mreq_tok / "train" / "train_state.pt", weights_only=True)
    assert state["step"] == 3
    toks = tok.encode(speech(TEXTS["a"], sr=4800), 4800)
    assert toks[8].shape[-1] * 6 == toks[48].shape[-1]


@pytest.fixture(scope="module")
def halle_ckpt(work, mreq_tok, valle_ckpt) -> Path:
    cfg = f'''model = "halle"
out = "ckpt/halle"
[data]
manifest = "train.jsonl"
[tokenizer]
path = "ckpt/mreq"
[init]
valle = "ckpt/valle"
[model_config]
{TINY}window = 48
overlap = 12
[train]
steps = 2
batch_size = 2
lr = 1e-4
warmup = 0
seed = 0
'''
    return run_training(load_train_config(write(work, "halle.toml", cfg)))


def test_halle_trains_from_tokenizer_with_valle_init(work, halle_ckpt, valle_ckpt):
    from halle_bench.baselines.halle import HALLE
    from halle_bench.baselines.mreq_tokenizer import MReQTokenizer
    from halle_bench.baselines.valle import VALLE

    h = HALLE.load(halle_ckpt)
    assert _steps(halle_ckpt) == {"ar": 2, "nar": 2}
    assert h.nar.cfg.window == 48
    v = VALLE.load(valle_ckpt)
    fresh = HALLE.build(MReQTokenizer.load(work / "ckpt" / "mreq"), size="tiny", seed=0,
                        d_model=32, n_heads=2, n_layers=1, d_ff=64)
    vs = v.ar.state_dict()
    hs, fs = h.ar.state_dict(), fresh.ar.state_dict()
    shared = [k for k in vs if k.startswith("decoder.") and vs[k].dim() == 2]
    assert shared
    for k in shared:
        # 2 AdamW steps at lr 1e-4 move a weight by at most ~2e-4; a fresh init is far off
        assert (hs[k] - vs[k]).abs().max() < 1e-3, k
        assert (fs[k] - vs[k]).abs().max() > 1e-2, k
    init = json.loads((halle_ckpt / "training.json").read_text())["init"]
    assert set(shared) <= set(init["loaded"])
    # the same config again: both stages already at `steps`, nothing retrains
    before = {k: t.clone() for k, t in h.lm.state_dict().items()}
    run_training(load_train_config(work / "halle.toml"))
    again = HALLE.load(halle_ckpt)
    assert _steps(halle_ckpt) == {"ar": 2, "nar": 2}
    assert all(torch.equal(before[k], t) for k, t in again.lm.state_dict().items())


def test_missing_tokenizer_is_a_config_error(work):
    cfg = ('model = "halle"\nout = "ckpt/h2"\n[data]\nmanifest = "train.jsonl"\n'
           '[tokenizer]\npath = "ckpt/nope"\n')
    with pytest.raises(ConfigError, match="nope") as ei:
        run_training(load_train_config(write(work, "h2.toml", cfg)))
    assert ei.value.line == 6


def test_trained_checkpoints_run_through_the_harness(work, valle_ckpt, halle_ckpt):
    import halle_bench
    from halle_bench.config import load_config

    cfg = write(work, "bench.toml", '''[dataset]
manifest = "train.jsonl"
buckets = [0, 3, 10]
prompt = "cross-utterance"
prompt_seconds = 1.0
[[systems]]
name = "gt"
kind = "ground-truth"
[[systems]]
name = "valle"
kind = "valle"
checkpoint = "ckpt/valle"
max_new_tokens = 20
top_k = 5
[[systems]]
name = "halle"
kind = "halle"
checkpoint = "ckpt/halle"
max_new_tokens = 3
top_k = 5
[run]
seed = 0
warmup = false
''')
    summary = halle_bench.run(load_config(cfg), work / "run", metrics=["longform"])
    rows = [json.loads(x) for x in (work / "run" / "generation.jsonl").read_text().splitlines()]
    assert {r["system"] for r in rows} == {"gt", "valle", "halle"} and len(rows) == 9
    bad = [(r["system"], r["utterance"], r.get("error")) for r in rows if r["status"] != "ok"]
    assert not bad, bad
    assert summary.n_failed == 0
    for s in ("valle", "halle"):
        assert len(list((work / "run" / "audio" / s).glob("*.wav"))) == 3


@pytest.mark.parametrize("body, line, match", [
    ('model = "valle"\nout = "o"\n[data]\nmanifest = "m.jsonl"\n[codec]\nkind = "tiny"\n[train]\nstep = 3\n',
     8, "unknown key 'step'"),
    ('model = "gpt"\nout = "o"\n', 1, "model"),
    ('model = "valle"\nout = "o"\n[data]\nmanifest = "m.jsonl"\n[codec]\nkind = "mp3"\n', 6, "unknown kind"),
    ('model = "valle"\nout = "o"\n[data]\nmanifest = "m.jsonl"\n[codec]\nkind = "tiny"\n[train]\nlr = -1\n',
     8, "lr"),
    ('model = "mreq"\nout = "o"\n[data]\nmanifest = "m.jsonl"\n[codec]\nkind = "tiny"\n[train]\nwarmup = 3\n',
     8, "unknown key 'warmup'"),
    ('model = "halle"\nout = "o"\n[data]\nmanifest = "m.jsonl"\n[tokenizer]\npath = "t"\n[model_config]\n'
     'size = "tiny"\nd_model = 30\nn_heads = 4\n', 9, "multiple"),
    ('model = "halle"\nout = "o"\n[data]\nmanifest = "m.jsonl"\n', None, "tokenizer"),
    ('model = "halle"\nout = "o"\n[data]\nmanifest = "m.jsonl"\n[tokenizer]\npath = "t"\n[codec]\nkind = "tiny"\n',
     7, "not used"),
    ('model = "valle"\nout = "o"\n[data]\nmanifest = "m.jsonl"\n[codec]\nkind = "tiny"\n[train.ar]\nseed = 2\n',
     8, "unknown key 'seed'"),
    ('model = "valle"\nout = "o"\n[data]\nmanifest = "m.jsonl"\n[codec]\nkind = "tiny"\nratio = [2]\n', 7, "ratio"),
    ('model = "valle"\nout = "o"\n[data]\nmanifest = "m.jsonl"\n[codec]\nkind = "tiny"\n[bogus]\nx = 1\n', 7, "bogus"),
    ('model = "valle"\nout = "o"\n[data]\nmanifest = "m.jsonl"\n[codec]\nkind = "tiny"\n[train]\nema = 1.5\n', 8, "ema"),
    ('model = "valle"\nout = "o"\n[data]\nmanifest = "m.jsonl"\n[codec]\nkind = "tiny"\n[train]\nmax_frames = -4\n', 8, "max_frames"),
    ('model = "valle"\nout = "o"\n[data]\nmanifest = "m.jsonl"\n[codec]\nkind = "tiny"\n[train.nar]\naccum_steps = 0\n', 8, "accum_steps"),
    ('model = "valle"\nout = "o"\n[data]\nmanifest = "m.jsonl"\nval_items = -1\n[codec]\nkind = "tiny"\n', 5, "val_items"),
    ('model = "valle"\nout = "o"\n[data]\nmanifest = "m.jsonl"\n[codec]\nkind = "tiny"\n[speak]\nitems = 2\n', 7, "val_items >= 2"),
    ('model = "valle"\nout = "o"\n[data]\nmanifest = "m.jsonl"\nval_items = 2\n[codec]\nkind = "tiny"\n[speak]\nasr = 3\n', 9, "asr"),
    ('model = "valle"\nout = "o"\n[data]\nmanifest = "m.jsonl"\nval_items = 2\n[codec]\nkind = "tiny"\n[speak]\nvoice = 3\n', 9, "unknown key 'voice'"),
    ('model = "mreq"\nout = "o"\n[data]\nmanifest = "m.jsonl"\n[codec]\nkind = "tiny"\n[speak]\nitems = 2\n', 7, "speak"),
    ('model = "valle"\nout = "o"\n[data\n', 3, "invalid TOML"),
])
def test_bad_configs_name_file_and_line(tmp_path, body, line, match):
    p = write(tmp_path, "bad.toml", body)
    with pytest.raises(ConfigError, match=match) as ei:
        load_train_config(p)
    assert ei.value.path == str(p)
    if line is not None:
        assert ei.value.line == line, ei.value


def test_overrides_and_stage_tables(tmp_path):
    from halle_bench.baselines.training.run import _lib_train_config

    p = write(tmp_path, "ok.toml", valle_cfg(7) + '[train.nar]\nsteps = 9\nbatch_size = 4\n')
    job = load_train_config(p)
    assert job.out == (tmp_path / "ckpt" / "valle").resolve() and job.data.manifest == tmp_path / "train.jsonl"
    assert _lib_train_config(job, "ar", 1).steps == 7 and _lib_train_config(job, "nar").steps == 9
    assert _lib_train_config(job, "nar").batch_size == 4 and _lib_train_config(job, "ar").warmup_steps == 1
    j2 = job.with_overrides(steps=11, device="cpu")
    assert _lib_train_config(j2, "nar").steps == 11 and _lib_train_config(j2, "ar").device == "cpu"
    assert _lib_train_config(j2, "nar").batch_size == 4
    with pytest.raises(ConfigError, match="steps"):
        job.with_overrides(steps=-1)
    with pytest.raises(ConfigError, match="device"):
        job.with_overrides(device="gpu")


def test_out_holding_another_model_is_refused(work, valle_ckpt):
    cfg = f'model = "mreq"\nout = "ckpt/valle"\n[data]\nmanifest = "train.jsonl"\n[codec]\n{MREQ_CODEC}'
    with pytest.raises(ConfigError, match="holds a 'valle' training") as ei:
        run_training(load_train_config(write(work, "wrong.toml", cfg)))
    assert ei.value.line == 2


def test_validation_split_speak_check_and_curves(work, speech):
    # 4 utterances: 2 held out (validation loss + the speak check), 2 trained on
    save_audio(work / "d.wav", speech("Seven eight nine ten.", sr=SR), SR)
    with open(work / "train4.jsonl", "w") as f:
        for uid, text in {**TEXTS, "d": "Seven eight nine ten."}.items():
            f.write(json.dumps({"id": uid, "text": text, "audio": f"{uid}.wav"}) + "\n")
    body = valle_cfg(2).replace('out = "ckpt/valle"', 'out = "ckpt/valle-val"').replace(
        'manifest = "train.jsonl"', 'manifest = "train4.jsonl"\nval_items = 2\ntokens_dir = "shared-tokens"')
    # a budget no loaded machine reaches: both items are synthesised
    body += 'val_every = 1\n[speak]\nasr = "whisper-tiny.en"\nitems = 2\nbeam_size = 1\nbudget_s = 3600\n'
    out = run_training(load_train_config(write(work, "valle-val.toml", body)))
    info = json.loads((out / "training.json").read_text())
    assert info["n_examples"] == 2 and info["n_validation"] == 2 and len(info["validation_ids"]) == 2
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert {r["stage"] for r in rows} == {"ar", "nar"}
    assert [r["step"] for r in rows if r["stage"] == "ar" and "val_loss" in r] == [1, 2]
    speak = [r for r in rows if "val_wer" in r]
    # the check runs in the NAR stage (AR + NAR make speech) at the end; an untrained model babbles
    assert [r["stage"] for r in speak] == ["nar"] and speak[0]["speak_items"] == 2 and speak[0]["val_wer"] >= 0.5
    assert speak[0]["speak_done"] == 2 and 0 < speak[0]["val_cer"] <= speak[0]["val_wer"] + 1
    ar_val = [r for r in rows if r["stage"] == "ar" and "val_loss" in r]
    assert all("val_shuffle_gap" in r and "val_top10" in r for r in ar_val)  # the alignment diagnostics
    assert all("val_shuffle_gap" in r for r in rows if r["stage"] == "nar" and "val_loss" in r)
    assert (out / "metrics.csv").exists() and (out / "curves.png").stat().st_size > 5000
    assert (work / "shared-tokens" / "wav_sha256.json").exists() and not (out / "tokens").exists()
