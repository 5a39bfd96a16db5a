"""A trained VALL-E / HALL-E folder with each stage's last *raw* weights instead of its EMA.

`python -m halle_bench.baselines.training.export TRAINED OUT`

A finished stage exports its weight EMA (`[train] ema`); the raw weights of its last step stay
in `TRAINED/train/<stage>/last/model.safetensors` (to resume). This writes OUT as a copy of
TRAINED (config, codec or tokenizer, training files) whose `model.safetensors` holds those raw
weights instead, and records that in `config.json` (`extra.weights = "raw"`).

Why: an EMA is only as good as its decay is for the run's length. The pair trained in this
repository before the EMA warm-up existed (`loop.ema_decay`) exported a plain 0.999 EMA,
which after 700-800 steps is still half the initial weights; its raw weights are what was
benchmarked (results/pair/).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from halle_bench.audio import sha256_file
from halle_bench.baselines.checkpoint import CONFIG, FORMAT, WEIGHTS, CheckpointError, read_config

STAGES = ("ar", "nar")


def raw_state(trained: Path) -> dict:
    """The folder's model state with every tensor taken from its stage's last raw checkpoint."""
    from safetensors.torch import load_file

    lm = load_file(str(trained / WEIGHTS))
    new = {}
    for stage in STAGES:
        p = trained / "train" / stage / "last" / WEIGHTS
        if not p.exists():
            raise CheckpointError(f"{trained}: {p.relative_to(trained)} not found (not a folder `halle-bench train` "
                                  "wrote, or the stage never checkpointed)")
        for k, v in load_file(str(p)).items():
            key = k if k.startswith(f"{stage}.") else f"{stage}.{k}"  # HALL-E's NAR adapter already says nar.
            if key not in lm or lm[key].shape != v.shape:
                raise CheckpointError(f"{p}: {k} does not fit the exported model ({key})")
            new[key] = v.to(lm[key].dtype)
    missing = sorted(set(lm) - set(new))
    if missing:
        raise CheckpointError(f"{trained}: the stages' checkpoints lack {missing[:3]}")
    return new


def export_raw(trained: str | Path, out: str | Path) -> Path:
    from safetensors.torch import save_file

    trained, out = Path(trained), Path(out)
    meta = read_config(trained)
    state = raw_state(trained)
    if out.exists():
        raise FileExistsError(f"{out} exists; remove it first")
    ignore = shutil.ignore_patterns("train", "tokens", WEIGHTS, CONFIG)  # checkpoints and shards stay behind
    shutil.copytree(trained, out, ignore=ignore)
    save_file(state, str(out / WEIGHTS), metadata={"format": FORMAT})
    extra = {**(meta.get("extra") or {}), "weights": "raw", "exported_from": str(trained.resolve()),
             "ema_weights_sha256": meta.get("weights_sha256")}
    (out / CONFIG).write_text(json.dumps({**meta, "extra": extra, "weights_sha256": sha256_file(out / WEIGHTS)},
                                         indent=2, sort_keys=True))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("trained", help="a VALL-E or HALL-E folder written by `halle-bench train`")
    ap.add_argument("out", help="the folder to write")
    a = ap.parse_args(argv)
    try:
        print(f"raw weights -> {export_raw(a.trained, a.out)}")
    except (CheckpointError, FileExistsError) as e:
        print(f"error: {e}")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["export_raw", "raw_state"]
