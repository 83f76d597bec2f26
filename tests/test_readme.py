"""The documents' Python examples run as written.

Every ```python block of README.md (and of docs/convert.md, when it exists) is run on its own in a
fresh interpreter, in an empty temporary directory, and must exit with status 0. Commands that
need data or minutes of training are written as ```bash blocks, which are not run.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", ROOT / "docs" / "convert.md"]
FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def python_blocks(text: str) -> list[str]:
    """The bodies of the ```python fenced blocks of a markdown text, in order."""
    return [m.group(1) for m in FENCE.finditer(text)]


def _examples() -> list:
    params = []
    for doc in DOCUMENTS:
        if not doc.exists():
            continue
        for i, code in enumerate(python_blocks(doc.read_text(encoding="utf-8")), start=1):
            params.append(pytest.param(code, id=f"{doc.relative_to(ROOT)}#{i}"))
    return params


EXAMPLES = _examples()


def test_the_readme_has_python_examples():
    assert any("README.md" in p.id for p in EXAMPLES), "README.md has no ```python block"


def test_blocks_are_found_exactly():
    text = (
        "intro\n```python\nprint(1)\n```\n```bash\nexit 1\n```\n"
        "```python\nx = 2\nprint(x)\n```\n```py\nnot this\n```\n"
    )
    assert python_blocks(text) == ["print(1)\n", "x = 2\nprint(x)\n"]


@pytest.mark.parametrize("code", EXAMPLES)
def test_example_runs(code: str, tmp_path: Path):
    script = tmp_path / "example.py"
    script.write_text(code, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
