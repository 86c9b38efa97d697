"""Two CPU processes (gloo): DDP training keeps ranks in sync, rank 0 alone writes files,
and feature extraction split across ranks equals the single-process result."""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.multiprocessing as mp
from torch.utils.data import DataLoader, Dataset

from vidreid.data.samplers import PKSampler
from vidreid.engine import distributed as D
from vidreid.engine.inference import extract_features
from vidreid.engine.optim import build_optimizer
from vidreid.engine.trainer import SkippableSampler, train

WORLD = 2
NUM_TRACKLETS, CLIPS_EACH = 5, 3


class ToyTestClips(Dataset):
    """``(clip, tracklet_index)``, CLIPS_EACH clips per tracklet; clip 4 has 2 frames."""

    def __len__(self) -> int:
        return NUM_TRACKLETS * CLIPS_EACH

    def __getitem__(self, j: int):
        g = torch.Generator().manual_seed(j)
        t = 2 if j == 4 else 3  # unequal lengths are batched separately
        return torch.randn(t, 3, 16, 8, generator=g), j // CLIPS_EACH


def _worker(rank: int, tmp: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    info = D.init_distributed("cpu", init_method=f"file://{tmp}/rendezvous")
    assert (info.rank, info.world_size) == (rank, WORLD)
    from test_trainer import CE, NUM_IDS, ToyClips, ToyModel

    torch.manual_seed(100 + rank)  # different init per rank: DDP must broadcast rank 0's
    model = ToyModel(NUM_IDS)
    ds = ToyClips()
    sampler = PKSampler(ds.pids, num_instances=2, batch_size=4, seed=3, rank=rank,
                        world_size=WORLD)
    loader = DataLoader(ds, batch_size=4, sampler=SkippableSampler(sampler), drop_last=True)
    opt = build_optimizer(model.parameters(), "sgd", lr=0.1)
    result = train(model, CE(), loader, opt, None, epochs=2,  # one PK batch per epoch
                   run_dir=Path(tmp) / f"run{rank}", device="cpu", amp="off",
                   tensorboard=False, progress=False)
    assert result.global_step == 2
    feats = extract_features(model, ToyTestClips(), NUM_TRACKLETS, batch_size=4,
                             amp="off", channels_last=False)
    torch.save({"model": model.state_dict(), "feats": feats}, Path(tmp) / f"rank{rank}.pt")
    D.cleanup_distributed()


def test_two_process_ddp_training_and_extraction(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(str(tmp_path),), nprocs=WORLD, join=True)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    for name, value in r0["model"].items():
        assert torch.equal(value, r1["model"][name]), name
    # rank 0 alone wrote the run folder
    assert (tmp_path / "run0" / "last.pt").is_file()
    assert (tmp_path / "run0" / "log.jsonl").is_file()
    assert not (tmp_path / "run1").exists()
    # the gathered features equal a single-process extraction with the same weights
    from test_trainer import NUM_IDS, ToyModel

    model = ToyModel(NUM_IDS)
    model.load_state_dict(r0["model"])
    single = extract_features(model, ToyTestClips(), NUM_TRACKLETS, batch_size=4, amp="off",
                              channels_last=False)
    assert torch.allclose(r0["feats"], single, atol=1e-5)
    assert torch.equal(r0["feats"], r1["feats"])
    # and the checkpoint holds rank 0's final weights
    ckpt = torch.load(tmp_path / "run0" / "last.pt", weights_only=True)
    assert torch.equal(ckpt["model"]["classifier.weight"], r0["model"]["classifier.weight"])
