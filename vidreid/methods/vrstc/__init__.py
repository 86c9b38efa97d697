"""VRSTC (Hou et al., CVPR 2019): occlusion completion with STCnet, then non-local re-ID.

- :mod:`.stc`: the occlusion locator pass, STCnet training (a :class:`~vidreid.engine.trainer.Trainer`
  step) and dataset completion;
- :mod:`.config`: the STCnet config schema (``configs/vrstc/stc/*.yaml``);
- :mod:`.commands`: ``vidreid vrstc train-stc|complete``.

The networks (re-ID network, locator, generator, discriminators, ID guider) are in
:mod:`vidreid.models.vrstc`.
"""
