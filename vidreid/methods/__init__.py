"""Methods whose training has stages of their own beyond a model file (e.g. VRSTC's STCnet
GAN and dataset completion). Each is a sub-package holding its stages, config schema and
``commands`` module (discovered by :mod:`vidreid.cli`); its networks register in
:mod:`vidreid.models` like every other model.
"""
