"""Frame-level CNN backbones: ``forward(x [N,3,H,W]) -> [N,C,h,w]`` plus ``out_channels``.

Every module of this package registers itself in :data:`vidreid.models.BACKBONES` when
imported (``vidreid.models`` imports them all); build them with
:func:`vidreid.models.build_backbone`.
"""

from __future__ import annotations

from vidreid.models.backbones.weights import LoadReport, load_pretrained, read_state_dict

__all__ = ["LoadReport", "load_pretrained", "read_state_dict"]
