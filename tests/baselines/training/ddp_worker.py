"""Run by tests/baselines/training/test_ddp.py, alone or under `torchrun`: trains a tiny AR
model with the shared loop and writes the final weights + logged losses (rank 0).

usage: ddp_worker.py OUT BATCH_SIZE ACCUM MAX_FRAMES STEPS
"""

import json
import sys
from pathlib import Path

import torch

from halle_bench.baselines.ar import ARConfig, CodecAR
from halle_bench.baselines.train import Example, TrainConfig, train
from halle_bench.baselines.training import dist as D
from halle_bench.baselines.transformer import TransformerConfig


def data(n: int = 16):
    # equal lengths: the loss is a per-token mean, so the global-batch mean is the item mean
    g = torch.Generator().manual_seed(0)
    return [Example(torch.randint(0, 20, (6,), generator=g).tolist(), torch.randint(0, 16, (1, 12), generator=g).numpy(),
                    str(i)) for i in range(n)]


def main() -> None:
    out, bs, accum, max_frames, steps = Path(sys.argv[1]), *map(int, sys.argv[2:6])
    info, device = D.init_distributed("cpu")
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = CodecAR(ARConfig(20, 16, 1, TransformerConfig.tiny(d_model=32, n_heads=2, n_layers=1, d_ff=64, dropout=0.0)))
    cfg = TrainConfig(steps=steps, batch_size=bs, accum_steps=accum, max_frames=max_frames, lr=3e-3, warmup_steps=1,
                      log_every=1, ema=0.9)
    res = train(model, data(), cfg, out / "ckpt", {"ar": model.cfg.to_dict()})
    if info.is_main:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out / "final.safetensors"))
        (out / "history.json").write_text(json.dumps({"world": info.world, "history": res.history}))


if __name__ == "__main__":
    main()
