"""Errors for bad dataset input: always name the file and say what was expected."""


class DatasetError(ValueError):
    """A dataset on disk does not match the layout the loader expects."""
