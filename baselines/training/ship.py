"""Turn a trained VALL-E or HALL-E checkpoint into the form the package ships.

`python -m halle_bench.baselines.training.ship SRC DST` reads the checkpoint folder SRC
(written by `halle-bench train`), and writes DST with

- `model.safetensors` in float16 (the models run in float32: loading upcasts; fp16 halves
  the wheel and costs nothing audible at these sizes),
- `config.json` with the new sha256 and `codec_source = "shipped"` (VALL-E) or
  `tokenizer_source = "shipped"` (HALL-E): the checkpoint names the package's own teacher
  codec / MReQ tokenizer instead of carrying a second copy of them. That is only allowed
  when the codec / tokenizer it was trained on *is* the shipped one (same sha256); anything
  else is refused, because the tokens would mean something else.

It prints the sha256 to put in the registry (`baselines/shipped.py`).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from halle_bench.baselines.checkpoint import CONFIG, FORMAT, WEIGHTS, CheckpointError, read_config
from halle_bench.audio import sha256_file


@dataclass(frozen=True)
class Shipped:
    architecture: str
    path: Path
    sha256: str
    n_params: int
    bytes: int


def _same_tensors(a: Path, b: Path) -> bool:
    """Every tensor of `b` (the shipped file) has equal values in `a` (compared in float32): a file
    re-saved in fp32 from the fp16 weights still matches, and its extra training-only state (the
    codebooks' EMA sums, which the shipped file drops) does not count."""
    from safetensors.torch import load_file

    x, y = load_file(str(a)), load_file(str(b))
    return all(k in x and x[k].shape == y[k].shape and bool((x[k].float() == y[k].float()).all()) for k in y)


def _point_at_shipped(cfg: dict, src: Path) -> dict:
    """`cfg` naming the package's codec / tokenizer instead of an embedded copy; refuses a model
    trained on anything else (its tokens would mean something else)."""
    arch = cfg.get("architecture")
    if arch == "valle":
        from halle_bench.baselines.codec_api import load_codec
        from halle_bench.baselines.shipped import teacher_dir

        want = load_codec(teacher_dir()).weights_sha256
        got = cfg.get("codec", {}).get("weights_sha256")
        if got != want:
            raise CheckpointError(f"checkpoint {src} was trained on another codec (sha256 {got}, the shipped teacher "
                                  f"is {want}); only models on the shipped codec can reference it")
        return {**cfg, "codec_source": "shipped"}
    if arch == "halle":
        from halle_bench.baselines.mreq_tokenizer import MReQTokenizer
        from halle_bench.baselines.shipped import mreq_dir

        shipped = MReQTokenizer.load(mreq_dir())
        mine = src / "tokenizer"
        same = (mine / "mrvq.safetensors").exists() and _same_tensors(mine / "mrvq.safetensors", mreq_dir() / "mrvq.safetensors") \
            and cfg.get("tokenizer", {}).get("codec", {}).get("weights_sha256") == shipped.codec.weights_sha256
        if not same:
            raise CheckpointError(f"checkpoint {src} was trained on another MReQ tokenizer than the shipped one "
                                  f"({mreq_dir()}); only models on the shipped tokenizer can reference it")
        # the training run re-saved the tokenizer in fp32: same values, another file sha256
        return {**cfg, "tokenizer_source": "shipped", "tokenizer": shipped.identity()}
    raise CheckpointError(f"checkpoint {src}: architecture {arch!r} is neither 'valle' nor 'halle'")


def ship(src: str | Path, dst: str | Path) -> Shipped:
    """Write the fp16, shipped-codec form of checkpoint `src` into `dst` (atomically per file)."""
    import torch
    from safetensors.torch import load_file, save_file

    src, dst = Path(src), Path(dst)
    meta = read_config(src)
    cfg = _point_at_shipped(dict(meta["config"]), src)
    state = load_file(str(src / WEIGHTS))
    half = {k: (v.to(torch.float16) if v.is_floating_point() else v).contiguous() for k, v in state.items()}
    dst.mkdir(parents=True, exist_ok=True)
    tmp = dst / (WEIGHTS + ".tmp")
    save_file(half, str(tmp), metadata={"format": FORMAT})
    tmp.replace(dst / WEIGHTS)
    sha = sha256_file(dst / WEIGHTS)
    extra = dict(meta.get("extra") or {})
    extra["shipped_from"] = {"weights_sha256": meta.get("weights_sha256"), "dtype": "float16"}
    out = {**meta, "config": cfg, "extra": extra, "weights_sha256": sha}
    tmpc = dst / (CONFIG + ".tmp")
    tmpc.write_text(json.dumps(out, indent=2, sort_keys=True))
    tmpc.replace(dst / CONFIG)
    n = sum(v.numel() for v in half.values())
    return Shipped(cfg["architecture"], dst, sha, n, (dst / WEIGHTS).stat().st_size)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src", help="a checkpoint folder written by `halle-bench train`")
    ap.add_argument("dst", help="the folder to write (e.g. baselines/checkpoints/pair/valle)")
    a = ap.parse_args(argv)
    try:
        s = ship(a.src, a.dst)
    except CheckpointError as e:
        print(f"error: {e}")
        return 2
    print(f"{s.architecture}: {s.n_params / 1e6:.2f} M parameters, {s.bytes / 2**20:.1f} MiB -> {s.path}\n"
          f"sha256 {s.sha256}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["Shipped", "ship"]
