"""The argparse pieces every verb shares: the parser class (dashed and underscore
spellings; an unknown option is one line with a "did you mean"), options declared
once, and the rule that finds a verb's DIR when it is left out.

Spellings: an option is declared once, dashed (``--job-file``); gpu-hog's underscore
spelling (``--job_file``) is turned into it before parsing, so both work everywhere,
abbreviations included (``--job-f``), and help shows the dashed one (with a note that
lists the underscore ones).

DIR: every verb that acts on a sweep takes its output directory first, and it may be
left out: it is then ``output``. A verb whose DIR is followed by other words (``hog
kill [DIR] JOB...``) takes the first word as DIR when it is a directory that holds a
sweep (``DIR/.hog/``), or when there would be too many words otherwise (``hog logs DIR
JOB``, ``hog gpus DIR SPEC``). A watched directory stands for its sweep (DIR/output).
"""
import argparse
import functools
import os
import sys
from typing import Any, List, NoReturn, Optional, Sequence, Tuple

from hog.errors import EXIT_USAGE, UsageError
from hog.state.jobdir import STATE_DIR

DEFAULT_DIR = "output"
DIR_HELP = f"the sweep's output directory (default: {DEFAULT_DIR})"


def dashed(token: str) -> str:
    """``--job_file=x`` -> ``--job-file=x``: the option's name dashed, its value kept."""
    if not token.startswith("--") or token == "--":
        return token
    name, eq, value = token.partition("=")
    return name.replace("_", "-") + eq + value


class HogParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` that takes both spellings of an option; an unknown option is
    one line naming the nearest real one."""

    def __init__(self, **kw: Any) -> None:
        # the help's width given, so that argparse does not import shutil to learn it
        # (every add_argument makes a formatter): 3 ms of every verb's start
        kw["formatter_class"] = functools.partial(
            kw.get("formatter_class", argparse.HelpFormatter), width=help_width())
        super().__init__(**kw)

    def parse_known_args(self, args: Optional[Sequence[str]] = None,  # type: ignore[override]
                         namespace: Any = None) -> Tuple[argparse.Namespace, List[str]]:
        words = list(sys.argv[1:] if args is None else args)
        cut = words.index("--") if "--" in words else len(words)
        words = [dashed(w) for w in words[:cut]] + words[cut:]
        return super().parse_known_args(words, namespace)

    def parse_args(self, args: Optional[Sequence[str]] = None,  # type: ignore[override]
                   namespace: Any = None) -> argparse.Namespace:
        words = list(sys.argv[1:] if args is None else args)
        for word in words[:words.index("--") if "--" in words else len(words)]:
            if not self.known(dashed(word)):    # before argparse's other complaints
                self.fail(self.unrecognized(word))
        parsed, extra = self.parse_known_args(words, namespace)
        if extra:
            self.fail(self.unrecognized(extra[0]))
        return parsed

    def fail(self, message: str) -> NoReturn:
        """One line, no usage: the suggestion is what the user needs (exit 2)."""
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")

    def known(self, word: str) -> bool:
        """False for a ``--name`` that is no option's name nor the start of one (a word
        with a space is a value to argparse, e.g. ``--on-job-end '--x y'``)."""
        if not word.startswith("--") or word == "--" or " " in word:
            return True
        name = word.partition("=")[0]
        return any(o.startswith(name) for o in self.options() if o.startswith("--"))

    def canonical(self, args: Sequence[str]) -> List[str]:
        """``args`` (already parsed without error) with every option in its full long
        spelling: ``-qd`` -> ``--quiet --detach``, ``--job_f=x`` -> ``--job-file=x``. For
        whoever re-reads them (``--detach`` starts hog again without ``--detach``)."""
        words = list(args)
        cut = words.index("--") if "--" in words else len(words)
        known = self._option_string_actions
        out: List[str] = []
        for word in words[:cut]:
            if word.startswith("--") and word != "--":
                name, eq, value = dashed(word).partition("=")
                full = [o for o in known if o.startswith("--") and o.startswith(name)]
                if name not in known and len({id(known[o]) for o in full}) == 1:
                    name = full[0]                      # an abbreviation
                out.append((self._long(known.get(name)) or name) + eq + value)
            elif word.startswith("-") and len(word) > 1 and f"-{word[1]}" in known:
                rest = word[1:]
                while rest:
                    action = known.get(f"-{rest[0]}")
                    if action is None:                  # not a cluster after all
                        out.append("-" + rest)
                        break
                    out.append(self._long(action) or f"-{rest[0]}")
                    if action.nargs != 0:               # -jjobs.txt: the rest is its value
                        if rest[1:]:
                            out.append(rest[1:])
                        break
                    rest = rest[1:]
            else:
                out.append(word)
        return out + words[cut:]

    @staticmethod
    def _long(action: Optional[argparse.Action]) -> Optional[str]:
        if action is None:
            return None
        return next((o for o in action.option_strings if o.startswith("--")), None)

    def options(self) -> List[str]:
        """Every option string this parser knows (``-h`` and ``--help`` included)."""
        return [o for a in self._actions for o in a.option_strings]

    def unrecognized(self, word: str) -> str:
        if not word.startswith("-") or word == "-":
            return f"unexpected argument {word!r}"
        name = word.partition("=")[0]
        import difflib  # only for a mistyped option
        close = difflib.get_close_matches(name, [o for o in self.options() if o.startswith("--")],
                                          n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else f" (see {self.prog} --help)"
        return f"unrecognized option {name!r}{hint}"

    def format_help(self) -> str:
        text = super().format_help()
        underscored = ["--" + o[2:].replace("-", "_") for o in self.options()
                       if o.startswith("--") and "-" in o[2:]]
        if underscored:
            text += ("\ngpu-hog's underscore spellings work too: "
                     + ", ".join(underscored) + "\n")
        return text


def help_width() -> int:
    """The width argparse gives its help (``shutil.get_terminal_size()``'s columns less
    2): $COLUMNS, else the terminal's, else 80."""
    try:
        columns = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns \
                if sys.__stdout__ is not None else 0
        except (ValueError, OSError):
            columns = 0
    return (columns or 80) - 2


def make_parser(prog: str, description: str, **kw: Any) -> HogParser:
    return HogParser(prog=prog, description=description, **kw)


def _flag(parser: Any, name: str, *short: str, **kw: Any) -> None:
    """An option ``--some-name`` (also taken as ``--some_name``), with its short forms
    (``parser``: a parser or one of its groups)."""
    parser.add_argument(*short, f"--{name.replace('_', '-')}", dest=name, **kw)


def dir_parser(verb: str, description: str, **kw: Any) -> HogParser:
    """The parser of a verb that acts on a sweep: ``hog VERB [DIR] ...``."""
    p = make_parser(f"hog {verb}", description, **kw)
    p.add_argument("dir", metavar="DIR", nargs="?", default=DEFAULT_DIR, help=DIR_HELP,
                   type=sweep_dir)
    return p


def is_sweep(path: str) -> bool:
    return os.path.isdir(os.path.join(sweep_dir(path), STATE_DIR))


def sweep_dir(path: str) -> str:
    """A watched directory (``hog watch DIR``: DIR/to_run/, its sweep in DIR/output/)
    stands for its sweep: DIR/output; any other path is itself."""
    watched = os.path.join(path, DEFAULT_DIR)
    if not os.path.isdir(os.path.join(path, STATE_DIR)) \
            and os.path.isdir(os.path.join(path, "to_run")) \
            and os.path.isdir(os.path.join(watched, STATE_DIR)):
        return watched
    return path


def take_dir(words: List[str], most: Optional[int] = None) -> Tuple[str, List[str]]:
    """Split a verb's words into DIR and the rest: the first word is DIR when it holds a
    sweep or when there are more than ``most`` words; otherwise DIR is ``output``."""
    if words and (is_sweep(words[0]) or (most is not None and len(words) > most)):
        return sweep_dir(words[0]), words[1:]
    if words and os.path.isdir(words[0]):
        raise UsageError(f"{words[0]}: not a sweep's directory (no {STATE_DIR}/ inside)")
    return DEFAULT_DIR, words


def check_default_dir(verb: str, directory: str) -> str:
    """``directory``, unless it is the default and there is no sweep there: then the
    error says so (rather than just 'output: no such directory')."""
    if directory == DEFAULT_DIR and not os.path.isdir(directory):
        raise UsageError(f"no sweep in ./{DEFAULT_DIR} (the default DIR): give the sweep's "
                         f"directory, e.g. hog {verb} DIR")
    return directory
