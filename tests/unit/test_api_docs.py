"""docs/api.md names every route of the admin API, as ``METHOD /path`` in backticks, with
the path exactly as the OpenAPI document writes it: a route added without its line in the
docs fails here."""

from __future__ import annotations

from pathlib import Path

from bus.api import ApiSettings, create_app
from bus.kafka import KafkaConnection

DOCS = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def test_every_route_of_the_openapi_document_is_named_in_docs_api_md(tmp_path: Path) -> None:
    """Creating the app starts nothing: it needs no broker."""
    connection = KafkaConnection.model_validate(
        {"bootstrap_servers": "127.0.0.1:9", "username": "u", "password": "p"}
    )
    app = create_app(connection, ApiSettings(tokens_path=tmp_path / "tokens.json"))
    text = DOCS.read_text(encoding="utf-8")
    routes = [
        f"{method.upper()} {path}"
        for path, operations in app.openapi()["paths"].items()
        for method in operations
    ]

    assert len(routes) > 40
    assert [route for route in routes if f"`{route}`" not in text] == []
