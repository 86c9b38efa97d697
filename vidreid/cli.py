"""The ``vidreid`` command line.

Each package contributes its sub-commands through a ``commands`` module exposing
``register(subparsers)``; each sub-command sets ``func(args) -> int``. A method package
(``vidreid/methods/<name>/``) with a ``commands`` module is found without an edit here.
Only commands read config files (through :mod:`vidreid.build`); the library takes plain
arguments and never imports a command module.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from pathlib import Path

COMMAND_MODULES = (
    "vidreid.data.commands",
    "vidreid.engine.commands",
    "vidreid.viz.commands",
    "vidreid.retrieval.commands",
    "vidreid.retrieval.extract_commands",
    "vidreid.retrieval.ingest_commands",
    "vidreid.retrieval.track_commands",
)


def method_command_modules() -> list[str]:
    """``vidreid.methods.<name>.commands`` for every method package that has one."""
    import vidreid.methods as methods

    found = []
    for info in pkgutil.iter_modules(methods.__path__):
        if info.ispkg and (Path(methods.__path__[0]) / info.name / "commands.py").is_file():
            found.append(f"vidreid.methods.{info.name}.commands")
    return sorted(found)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vidreid", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in (*COMMAND_MODULES, *method_command_modules()):
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:  # a package still being built must not break the rest
            if exc.name != name:
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, KeyError) as exc:
        # Library errors are written to be read by users: show them without a traceback.
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"vidreid: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
