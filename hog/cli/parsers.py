"""The argparse pieces every verb shares: options spelled both ways, and the parser of
a verb that acts on a sweep's directory."""
import argparse
from typing import Any


def _flag(parser: Any, name: str, **kw: Any) -> None:
    """An option accepted as --some_name and --some-name (``parser``: a parser or one
    of its groups)."""
    names = [f"--{name}"]
    if "_" in name:
        names.append(f"--{name.replace('_', '-')}")
    parser.add_argument(*names, dest=name, **kw)


def dir_parser(verb: str, description: str) -> argparse.ArgumentParser:
    """The parser of a verb that acts on a sweep: ``hog VERB DIR ...``."""
    p = argparse.ArgumentParser(prog=f"hog {verb}", description=description)
    p.add_argument("dir", metavar="DIR", help="the sweep's output directory")
    return p
