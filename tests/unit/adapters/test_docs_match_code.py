"""The file-based sinks write their files where their module docstrings say they do.

Each docstring names the layout as ``<directory or outbox>/<source agency>/<bulletin id>.<ext>``
and says how ``:`` is written in a file name. The test reads both statements out of the
docstring and checks them against the path the sink really writes, for a bulletin id
that holds a ``:``.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType

import pytest

import adapters.cap
import adapters.stix
from adapters._files import Outbox
from bus.adapters import AdapterContext, AdapterType
from bus.adapters.testing import KIT_AGENCY, sample_views
from bus.bulletin import BulletinSchema
from bus.schemas import SchemaCatalog

_LAYOUT = re.compile(
    r"``<(?:directory|outbox)>/<source agency>/<bulletin id>(?P<suffix>\.[a-z]+)``"
)
_COLON = re.compile(
    r"(?:``|')?:(?:``|')? (?:is )?(?:written|becomes)(?: as)? (?:``|')?(?P<as>[^`'\s]+)"
)


@pytest.fixture(scope="module")
def schema() -> BulletinSchema:
    return BulletinSchema(SchemaCatalog.load())


@pytest.mark.parametrize(
    ("module", "kind"), [(adapters.cap, "alert"), (adapters.stix, "notice")], ids=["cap", "stix"]
)
async def test_the_sink_writes_the_file_its_docstring_names(
    module: ModuleType, kind: str, tmp_path: Path, schema: BulletinSchema
) -> None:
    doc = module.__doc__ or ""
    layouts = _LAYOUT.findall(doc)
    assert layouts, f"{module.__name__}'s docstring does not name its sink's file layout"
    colons = {match.group("as") for match in _COLON.finditer(doc)}
    assert len(colons) == 1, f"{module.__name__}'s docstring gives {colons} for ':'"
    (colon,) = colons

    (view,) = sample_views(schema, [kind], count=1)
    bulletin = view.bulletin.model_copy(update={"bulletin_id": "desk:7.a"})
    view = view.model_copy(update={"bulletin": bulletin})
    adapter: AdapterType = module.ADAPTER
    assert adapter.sink is not None
    state = tmp_path / "state"
    state.mkdir()
    context = AdapterContext(agency=KIT_AGENCY, instance="doc", schema=schema, state_dir=state)
    config = adapter.sink.config.model_validate({"directory": str(tmp_path / "out")})
    sink = adapter.sink.build(config, context)
    await sink.start()
    await sink.deliver(view)
    await sink.stop()

    written = [
        p.relative_to(tmp_path / "out").as_posix() for p in Outbox(tmp_path / "out", "").written()
    ]
    for suffix in layouts:
        said = f"{bulletin.source_agency}/desk{colon}7.a{suffix}"
        assert written == [said], f"{module.__name__}'s docstring says {said}, it wrote {written}"
