"""``vidreid demo``: the whole pipeline on a synthetic MARS-layout set, on CPU, in minutes.

Generates the set (128x64 frames, 6 cameras), trains temporal pooling (TP) on the small
``tiny`` backbone with the recipe of ``configs/baselines/tp_synth.yaml``, then evaluates
with both MARS protocols (torchreid's gallery with standard AP; the official one with junk
pid -1 and trapezoidal AP) and prints the tables and the run folder.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from vidreid.engine.config import PACKAGED_CONFIGS, load_config

logger = logging.getLogger(__name__)
DEMO_CONFIG = PACKAGED_CONFIGS / "baselines" / "tp_synth.yaml"
DEMO_SEED = 0
DEMO_CAMERAS = 6
DEMO_SIZE = (128, 64)
# (identities, max tracklet length, epochs): full demo / --quick
FULL = (80, 40, 30)
QUICK = (40, 24, 6)


def run_demo(out: str = "runs/demo", quick: bool = False) -> int:
    """Generate, train, evaluate; prints the tables and the run folder. Returns 0."""
    from vidreid import build as B
    from vidreid.data.synth import generate
    from vidreid.engine.run import run_training
    from vidreid.metrics.report import format_table

    if not DEMO_CONFIG.is_file():
        raise FileNotFoundError(
            f"demo config not found: {DEMO_CONFIG} (a broken install? reinstall vidreid)"
        )
    ids, max_len, epochs = QUICK if quick else FULL
    t0 = time.perf_counter()
    out_dir = Path(out)
    data_out = out_dir / f"synth-mars-{ids}ids-seed{DEMO_SEED}"
    if (data_out / "mars" / "info").is_dir():
        root = str(data_out)
        logger.info("using the synthetic set in %s", root)
    else:
        logger.info("generating a synthetic MARS-layout set (%d ids, %d cameras, %dx%d) in %s"
                    " ...", ids, DEMO_CAMERAS, DEMO_SIZE[0], DEMO_SIZE[1], data_out)
        root = generate(str(data_out), "mars", ids, DEMO_CAMERAS, DEMO_SEED,
                        size=DEMO_SIZE, max_len=max_len)
    t_data = time.perf_counter() - t0
    cfg = load_config(DEMO_CONFIG, [
        f"data.root={root}", f"output_dir={out_dir / 'runs'}", f"train.epochs={epochs}",
    ])
    result, run_dir, model, _ = run_training(cfg, evaluate=False)  # evaluated below
    if result.interrupted:
        logger.warning("demo interrupted; resume the training with: vidreid train --resume %s",
                       run_dir)
        return 130
    t_train = time.perf_counter() - t0 - t_data
    for protocol in ("torchreid", "official"):
        cfg_p = load_config(DEMO_CONFIG, [f"data.root={root}", f"data.options.protocol={protocol}"])
        dataset = B.build_dataset(cfg_p)
        results = B.evaluate(cfg_p, model, dataset, model_device(model))
        print(f"\nMARS {protocol} protocol ({len(dataset.query)} queries,"
              f" {len(dataset.gallery)} gallery tracklets):")
        print(format_table(results))
    chance = 100.0 / max(len({t.pid for t in dataset.gallery}), 1)
    print(f"\nchance rank-1 ~ {chance:.1f}%; data {t_data:.0f}s, training {t_train:.0f}s,"
          f" total {time.perf_counter() - t0:.0f}s")
    print(f"run folder: {run_dir}")
    return 0


def model_device(model: object) -> object:
    import torch

    params = list(model.parameters())  # type: ignore[attr-defined]
    return params[0].device if params else torch.device("cpu")
