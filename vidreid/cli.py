"""The ``vidreid`` command line.

Each package contributes its sub-commands through a ``commands`` module exposing
``register(subparsers)``; each sub-command sets ``func(args) -> int``. A method package
(``vidreid/methods/<name>/``) with a ``commands`` module is found without an edit here.
Only commands read config files (through :mod:`vidreid.build`); the library takes plain
arguments and never imports a command module.

Output: a command's results (tables, the run folder, written paths) go to stdout; progress,
warnings and errors are ``logging`` records on stderr (``--quiet``: warnings and errors only;
``--verbose``: debug too). Progress bars are drawn only on a terminal.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import os
import pkgutil
import signal
import sys
from pathlib import Path

logger = logging.getLogger("vidreid")

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


class _Formatter(logging.Formatter):
    """Plain messages; warnings and errors say so (``warning: ...``, ``vidreid: error: ...``)."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if record.levelno >= logging.ERROR:
            return f"vidreid: error: {text}"
        if record.levelno >= logging.WARNING:
            return f"warning: {text}"
        return text


def setup_logging(quiet: bool = False, verbose: bool = False) -> None:
    """One stderr handler on the ``vidreid`` logger; hides progress bars off a terminal."""
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter("%(message)s"))
    root = logging.getLogger("vidreid")
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
    if quiet or not sys.stderr.isatty():
        os.environ["TQDM_DISABLE"] = "1"  # tqdm's default for bars not told otherwise


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vidreid", description="Video person re-identification: train, evaluate, search."
        " Run vidreid COMMAND --help for a command's options.")
    verbosity = parser.add_mutually_exclusive_group()
    # own dests: a sub-command's --quiet (no progress bar) must not reset these
    verbosity.add_argument("-q", "--quiet", dest="log_quiet", action="store_true",
                           help="print results, warnings and errors only")
    verbosity.add_argument("-v", "--verbose", dest="log_verbose", action="store_true",
                           help="also debug messages")
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


#: Exit status of bad input (config, arguments, data) and of a failed read / write of a file.
EXIT_BAD_INPUT = 2
EXIT_IO_ERROR = 1
#: OSErrors that are the environment's, not a bug, even when they name no file.
ENVIRONMENT_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}
)


def os_error_message(exc: OSError) -> str | None:
    """One line for an OSError that names its file or is a disk / permission error; None for
    others (those are bugs: their traceback is kept)."""
    if exc.filename is None and exc.errno not in ENVIRONMENT_ERRNOS:
        return None
    reason = exc.strerror or str(exc)
    if exc.filename is None:
        return reason
    target = f"{exc.filename} -> {exc.filename2}" if exc.filename2 is not None else exc.filename
    hint = ""
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        hint = " (choose a writable folder, e.g. output_dir=... / --out, or fix its permissions)"
    elif exc.errno in (errno.ENOSPC, errno.EDQUOT):
        hint = " (free some space or write elsewhere)"
    return f"{target}: {reason}{hint}"


def _stdout_closed() -> int:
    """The reader of stdout went away (``vidreid index info X | head -1``): stop quietly.

    stdout is pointed at /dev/null so the interpreter's final flush cannot raise again;
    the status is 128 + SIGPIPE, as for a command killed by the signal.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 128 + signal.SIGPIPE


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_quiet, args.log_verbose)
    try:
        status = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe (`| head`) surfaces here, inside the handler
        return status
    except BrokenPipeError:
        return _stdout_closed()
    except KeyboardInterrupt:
        logger.warning("interrupted")
        return 130
    except (ValueError, FileNotFoundError, KeyError) as exc:
        # Library errors are written to be read by users: show them without a traceback.
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        logger.error("%s", msg)
        return EXIT_BAD_INPUT
    except OSError as exc:  # read-only folder, full disk, ... (the file is named)
        msg = os_error_message(exc)
        if msg is None:
            raise
        logger.error("%s", msg)
        return EXIT_IO_ERROR


if __name__ == "__main__":
    sys.exit(main())
