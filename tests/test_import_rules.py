"""The import rules of ``docs/modules.md`` hold: its own check (a ``grep -P`` pattern
over every ``from hog`` / ``import hog`` line), run here in Python on the checkout, so
the documented rules and the code cannot drift apart."""
import re
from pathlib import Path

from tests.harness import CHECKOUT

DOC = CHECKOUT / "docs" / "modules.md"


def rules() -> "re.Pattern[str]":
    """The pattern of the doc's check: the second grep's quoted argument."""
    block = DOC.read_text().split("```sh\n", 1)[1].split("```", 1)[0]
    return re.compile(re.findall(r"grep -P '([^']+)'", block)[0])


def import_lines(root: Path):
    for path in sorted((root / "hog").rglob("*.py")):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if re.match(r"\s*(from|import) hog", line):
                yield f"{path.relative_to(root)}:{n}:{line}"


def test_every_import_keeps_to_the_documented_rules():
    lines = list(import_lines(CHECKOUT))
    assert len(lines) > 200
    broken = [line for line in lines if rules().search(line)]
    assert broken == []


def test_the_check_catches_an_import_that_breaks_a_rule():
    pattern = rules()
    assert pattern.search("hog/backends/wire.py:1:from hog.engine import state")
    assert pattern.search("hog/views/status.py:1:from hog.state.store import Store")
    assert pattern.search("hog/model.py:3:from hog.errors import HogError")
    assert not pattern.search("hog/backends/attempt.py:21:from hog.state import staging")
