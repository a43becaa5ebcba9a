"""Documentation that cannot drift from the program."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT


def test_cli_reference_matches_the_commands_help():
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen-cli-docs.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_readme_gives_exactly_the_two_fresh_machine_commands():
    readme = (ROOT / "README.md").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert "make demo" in readme and "make test" in readme
    assert "\ndemo:" in makefile and "\ntest:" in makefile
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci


def test_every_doc_the_readme_links_exists():
    readme = (ROOT / "README.md").read_text()
    for line in readme.splitlines():
        if "](docs/" in line:
            target = line.split("](", 1)[1].split(")", 1)[0]
            assert (ROOT / target).is_file(), target
