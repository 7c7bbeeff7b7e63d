"""``hog completion bash|zsh``: a shell completion script, generated from the parsers.

The script completes the verbs after ``hog``, each verb's options (dashed and short
spellings) after a ``-``, an option's choices (``--display <TAB>``) and a positional's
choices (``hog completion <TAB>``); everything else (DIR, FILE, JOB) falls back to the
shell's file-name completion. The zsh script is the bash one under zsh's
``bashcompinit``. No dependency: nothing runs hog while completing.
"""
import argparse
import shlex
from typing import Dict, List

from hog.cli import RUN  # the script's name for ``hog`` without a verb (a sweep)
from hog.cli.parsers import make_parser

SHELLS = ("bash", "zsh")
FUNCTION = "_hog_complete"

USAGE = """\
To enable it in the current shell, and in every new one:
  bash: source <(hog completion bash)    and add that line to ~/.bashrc
  zsh:  source <(hog completion zsh)     and add that line to ~/.zshrc (after compinit)
"""


def completion_parser() -> argparse.ArgumentParser:
    p = make_parser("hog completion", "Print a shell completion script for hog: it "
                    "completes verbs, options and their choices.", epilog=USAGE,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("shell", choices=SHELLS, help="the shell the script is for")
    return p


def _words(items: List[str]) -> str:
    return shlex.quote(" ".join(items))


def _verb_case(verb: str, parser: argparse.ArgumentParser) -> List[str]:
    """The lines that set ``opts``, ``values`` and ``words`` for one verb, and the case
    arms that complete an option's choices."""
    opts: List[str] = []
    values: List[str] = []
    words: List[str] = []
    choices: List[str] = []
    for a in parser._actions:
        if not a.option_strings:
            words += [str(c) for c in a.choices or ()]
            continue
        if a.help == argparse.SUPPRESS:
            continue
        opts += a.option_strings
        if a.nargs != 0:            # it takes a value: don't offer options after it
            values += a.option_strings
            if a.choices:
                pattern = "|".join(shlex.quote(o) for o in a.option_strings)
                listed = _words([str(c) for c in a.choices])
                choices.append(f"                {pattern}) words={listed}; only=1 ;;")
    lines = [f"        {shlex.quote(verb)})",
             f"            opts={_words(opts)}",
             f"            values={_words(values)}",
             f"            words={_words(words)}"]
    if choices:
        lines += ["            case $prev in", *choices, "            esac"]
    lines.append("            ;;")
    return lines


def bash_script(parsers: Dict[str, argparse.ArgumentParser]) -> str:
    verbs = [v for v in parsers if v != RUN]
    cases: List[str] = []
    for verb, parser in parsers.items():
        cases += _verb_case(verb, parser)
    body = "\n".join(cases)
    pattern = "|".join(verbs)
    return f"""\
# hog's completion for bash (printed by 'hog completion bash').
# Enable it with: source <(hog completion bash)   (e.g. in ~/.bashrc)
{FUNCTION}() {{
    local cur=${{COMP_WORDS[COMP_CWORD]}} prev=
    [[ $COMP_CWORD -gt 0 ]] && prev=${{COMP_WORDS[COMP_CWORD-1]}}
    local verb={RUN} opts= values= words= only=
    if [[ $COMP_CWORD -gt 1 ]]; then
        case ${{COMP_WORDS[1]}} in
            {pattern}) verb=${{COMP_WORDS[1]}} ;;
        esac
    fi
    case $verb in
{body}
    esac
    COMPREPLY=()
    if [[ -n $only ]]; then                         # an option's choices
        COMPREPLY=($(compgen -W "$words" -- "$cur"))
        return 0
    fi
    if [[ -n $prev && " $values " == *" $prev "* ]]; then
        return 0                                    # an option's value: file names
    fi
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    elif [[ $COMP_CWORD -eq 1 ]]; then
        COMPREPLY=($(compgen -W {_words(verbs)} -- "$cur"))
    elif [[ -n $words ]]; then
        COMPREPLY=($(compgen -W "$words" -- "$cur"))
    fi
    return 0
}}
complete -o default -F {FUNCTION} hog
"""


def zsh_script(parsers: Dict[str, argparse.ArgumentParser]) -> str:
    return ("# hog's completion for zsh (printed by 'hog completion zsh').\n"
            "# Enable it with: source <(hog completion zsh)   (in ~/.zshrc, after compinit)\n"
            "autoload -U +X bashcompinit && bashcompinit\n"
            + bash_script(parsers).split("\n", 2)[2])


def completion_script(shell: str, parsers: Dict[str, argparse.ArgumentParser]) -> str:
    """The completion script for ``shell`` ('bash' or 'zsh'); ``parsers``: each verb's
    parser, ``_`` for hog without a verb."""
    return bash_script(parsers) if shell == "bash" else zsh_script(parsers)
