"""The README's example runs as written: documentation that cannot rot silently."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import repo_root

pytestmark = pytest.mark.integration


def test_readme_example_publishes_to_the_agency_topic() -> None:
    readme = (repo_root() / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.DOTALL)
    assert blocks, "README.md has no python example"

    result = subprocess.run(
        [sys.executable, "-c", blocks[0]], capture_output=True, text=True, timeout=180, check=False
    )

    assert result.returncode == 0, result.stderr[-3000:]
    assert (
        "RecordMetadata(topic='liaison.from.north-river', partition=0, offset=0)" in result.stdout
    )


def readme_block(first_line: str) -> str:
    readme = (repo_root() / "README.md").read_text()
    for block in re.findall(r"```python\n(.*?)```", readme, flags=re.DOTALL):
        if block.startswith(first_line + "\n"):
            return str(block)
    raise AssertionError(f"README.md has no python block starting with {first_line!r}")


def test_readme_adapter_passes_the_contract_kit_as_written(tmp_path: Path) -> None:
    """The "Write an adapter" example and its kit test run as a third party would run them:
    in their own directory, without this repository's pytest configuration."""
    (tmp_path / "pager.py").write_text(readme_block("# pager.py"))
    (tmp_path / "test_pager.py").write_text(readme_block("# test_pager.py"))

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-W",
            "error",
            "-o",
            "asyncio_default_fixture_loop_scope=function",  # pytest-asyncio asks every project
            "test_pager.py",
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    passed = re.search(r"(\d+) passed", result.stdout)
    assert passed, result.stdout[-2000:]
    assert int(passed.group(1)) >= 7, result.stdout[-2000:]
    assert "failed" not in result.stdout
    assert "skipped" not in result.stdout
