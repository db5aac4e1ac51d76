"""The README's example runs as written: documentation that cannot rot silently."""

from __future__ import annotations

import re
import subprocess
import sys

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
