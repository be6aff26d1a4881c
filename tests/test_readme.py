"""The README's two newcomer commands exist, and CI runs exactly the README's test command."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _commands():
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    return [line.strip() for b in blocks for line in b.splitlines() if line.strip()]


def test_readme_has_main_job_and_test_command():
    cmds = _commands()
    assert any("python -m paper_checks --quick" in c and "pip install" in c for c in cmds)
    assert any("python -m pytest" in c and "pip install" in c for c in cmds)


def test_ci_runs_the_readme_test_command():
    test_cmd = next(c for c in _commands() if "python -m pytest" in c and "pip install" in c)
    # The README command starts with creating/activating a venv; CI does that itself.
    tail = test_cmd.split("&& ", 2)[-1]
    ci = (REPO / ".ci" / "run").read_text()
    assert tail in ci, (tail, ci)
