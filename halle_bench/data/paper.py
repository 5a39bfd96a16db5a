"""`halle-bench run --demo paper`: the trained VALL-E / HALL-E pair on the paper demo's set.

The set (`paper_set.py`) is the embedded demo's 8 utterances (`demo.py`: texts from the
bundled passage, which the pair's training corpus leaves out; 2 per bucket from 3 to 90 s)
plus 8 more in the 3-10 s bucket, so that the bucket the pair's target is set on holds 10
utterances; same prompts policy, buckets and scorers as the embedded demo. The systems are
the ones the paper compares: the ground truth, VALL-E on the 48 Hz teacher codec and HALL-E
on its 8 Hz MReQ tokens. The pair comes from `--pair WORK` (the folder
`scripts/train-pair.sh WORK` trains into: `WORK/valle`, `WORK/halle`) or, without it, from
the package (`valle-pair`, `halle-pair` in the model registry, sha256-checked).

The package ships no pair yet: the pair trained here for about two hours of 2 CPU cores
does not speak (README, results/pair/), and a model that babbles is not shipped as if it
worked. Without `--pair` the error says so and how to train one.

Decisions:
- A second demo rather than rows in the first: autoregressive generation of up to 90 s
  and Whisper on what may be babble do not fit the first demo's 5 minutes on 2 CPU cores.
  The extra short rows live only here, so the embedded demo and its baselines stay as they are.
- The config (`paper.toml`, beside the set's manifest) is rewritten on every call, because
  it names the checkpoints by absolute path inside the installed package, which can move.
  Its dataset name carries the set's version (`demo-v2-paper-v1`): results on the earlier
  8-utterance set (`demo-v2-paper`) are not comparable row for row.
- No codec resynthesis rows here: what the codecs alone keep (the ceiling of each model)
  is `results/resynthesis/`, and Whisper's fallback on degraded audio would double the time.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from .demo import build_demo
from .paper_set import PAPER_SET_VERSION, build_paper_set

PAPER_MODELS = {"valle": "valle-pair", "halle": "halle-pair"}  # system name -> model registry name
# Sampling as the paper's systems use it (top-k 50). Length caps equal in seconds: at most
# 0.25 s of audio per phoneme (espeak speaks ~0.08 s), i.e. 12 frames at 48 Hz for VALL-E and
# 2 at 8 Hz for HALL-E (the `halle` kind's default); the `valle` kind's default of 16 is
# meant for 75 Hz EnCodec and would let a 48 Hz model that never stops run 4x as long.
SAMPLING = {"top_k": 50, "temperature": 1.0}
MAX_LEN_RATIO = {"valle": 12.0, "halle": 2.0}


NO_SHIPPED_PAIR = ("this build of halle-bench ships no trained VALL-E / HALL-E pair (the one trained so far does "
                   "not speak: see results/pair/); train one with `bash scripts/train-pair.sh WORK` and run "
                   "`halle-bench run --demo paper --pair WORK`")


def _checkpoint(name: str) -> Path:
    from ..errors import MissingModelError
    from ..models import all_models, resolve

    if name not in all_models():
        raise MissingModelError(NO_SHIPPED_PAIR)
    return resolve(name).parent  # the checkpoint folder; resolve checks the weights' sha256


def pair_checkpoints(pair: Path | None) -> dict[str, Path]:
    """System name -> checkpoint folder: `pair/<system>` when a training folder is given, else
    the package's. A folder that is not a checkpoint of the right architecture is a ConfigError."""
    if pair is None:
        return {s: _checkpoint(m) for s, m in PAPER_MODELS.items()}
    from ..errors import ConfigError

    out = {}
    for sysname in PAPER_MODELS:
        d = Path(pair) / sysname
        cfg = d / "config.json"
        try:
            arch = json.loads(cfg.read_text(encoding="utf-8")).get("config", {}).get("architecture")
        except (OSError, ValueError) as e:
            raise ConfigError(f"--pair {pair}: {cfg} is not a trained checkpoint's config ({e})") from None
        if arch != sysname:
            raise ConfigError(f"--pair {pair}: {d} holds a {arch!r} checkpoint, expected {sysname!r}")
        out[sysname] = d.resolve()
    return out


def paper_config_dict(demo_config: dict, checkpoints: dict[str, Path], manifest: Path) -> dict:
    """The paper demo's config from the embedded demo's: the paper set's `manifest`, the demo's
    buckets, prompt policy and metrics, the pair as systems."""
    systems = [{"name": "ground-truth", "kind": "ground-truth"}]
    for sysname, path in checkpoints.items():
        systems.append({"name": sysname, "kind": sysname, "checkpoint": str(path), **SAMPLING,
                        "max_len_ratio": MAX_LEN_RATIO[sysname]})
    dataset = {**demo_config["dataset"], "manifest": str(manifest),
               "name": f"{demo_config['dataset']['name']}-paper-v{PAPER_SET_VERSION}"}
    return {"dataset": dataset,
            "systems": systems, "metrics": demo_config["metrics"], "run": demo_config["run"]}


def build_paper(home: Path, pair: Path | None = None) -> Path:
    """Build the demo and the paper set if needed and write the paper config beside the set's
    manifest; returns the config's path.
    A missing or corrupt checkpoint raises MissingModelError / ConfigError / a sha256 error naming it."""
    import tomli_w

    checkpoints = pair_checkpoints(pair)  # before building anything: a bad --pair fails fast
    manifest = build_paper_set(home)
    demo = tomllib.loads(build_demo(home).read_text(encoding="utf-8"))  # built by now: a cache hit
    config = paper_config_dict(demo, checkpoints, manifest)
    out = manifest.parent / "paper.toml"
    tmp = out.with_suffix(".toml.tmp")
    tmp.write_text("# halle-bench paper demo, generated by halle_bench.data.paper; do not edit\n"
                   + tomli_w.dumps(config), encoding="utf-8")
    tmp.replace(out)
    return out


__all__ = ["PAPER_MODELS", "build_paper", "pair_checkpoints", "paper_config_dict"]
