import torch
from torch import nn

from vidreid.models.base import VideoReIDModel
from vidreid.models.profile import count_parameters, gflops_per_frame


class FrameConv(VideoReIDModel):
    """A 1x1 conv 3 -> 4 per frame: 2 * 3 * 4 FLOPs per pixel."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1, bias=False)
        self.frozen = nn.Parameter(torch.zeros(5), requires_grad=False)

    def forward(self, clips, return_extras=False):
        return {"features": self.conv(clips.flatten(0, 1)).mean(dim=(1, 2, 3))}


def test_count_parameters() -> None:
    model = FrameConv()
    assert count_parameters(model) == 12 + 5
    assert count_parameters(model, trainable_only=True) == 12


def test_gflops_per_frame_and_mode_restored() -> None:
    model = FrameConv().train()
    flops = gflops_per_frame(model, input_size=(8, 4), seq_len=3) * 1e9
    assert round(flops) == 2 * 3 * 4 * 8 * 4
    assert model.training
