"""The API document lists exactly the routes the app serves."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from assistline.settings import Settings, StoreSettings
from assistline.signalling.app import create_app
from assistline.signalling.keys import OPENAPI_KEY


def _served_routes(app: web.Application) -> set[tuple[str, str]]:
    served = set()
    for route in app.router.routes():
        if route.method == "HEAD":  # added by aiohttp beside every GET
            continue
        resource = route.resource
        assert resource is not None
        served.add((route.method.lower(), resource.canonical))
    return served


def _documented_routes(document: dict[str, object]) -> set[tuple[str, str]]:
    paths = document["paths"]
    assert isinstance(paths, dict)
    return {(method, path) for path, item in paths.items() for method in item}


def test_document_and_router_agree() -> None:
    app = create_app(Settings(store=StoreSettings(data_dir=Path("/nonexistent"))))
    document = app[OPENAPI_KEY]
    assert document["openapi"] == "3.1.0"
    assert _served_routes(app) == _documented_routes(document)
    assert ("get", "/api/v1/openapi.json") in _served_routes(app)


def test_every_operation_is_described() -> None:
    app = create_app(Settings(store=StoreSettings(data_dir=Path("/nonexistent"))))
    for item in app[OPENAPI_KEY]["paths"].values():
        for operation in item.values():
            assert operation["summary"]
            assert operation["responses"]
            assert operation["operationId"]
