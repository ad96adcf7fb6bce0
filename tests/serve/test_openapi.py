"""The OpenAPI document held against the live server: a valid document whose request schemas
refuse what the server refuses, `/docs` with every asset served by ferry itself, and a bounded
schemathesis run over every operation (no 5xx, every answer as documented).

This module's `served` server is its own (the fixture is module-scoped), so the fuzzed
repository load/unload calls cannot disturb other modules.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import schemathesis
from conftest import ADMIN_TOKEN, Served
from hypothesis import HealthCheck, settings
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import validate
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from ferry.serve.rest.openapi import openapi_document

pytestmark = pytest.mark.serial  # schemathesis' cases vanish under pytest-xdist: see Makefile

DOCUMENT = openapi_document()
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance,
          content_type_conformance]
REPOSITORY_MODELS = "^/v2/repository/models/"
FUZZ_CONFIG: dict[str, Any] = {
    "seed": 20240917,
    "headers": {"Authorization": f"Bearer {ADMIN_TOKEN}"},
    "generation": {"max-examples": 25},
    "dictionaries": {"models": {"values": ["iris", "churn"]},
                     "versions": {"values": ["1", "2", "production"]},
                     "spare": {"values": ["fragile"]}},
    "operations": [
        {"include-path-regex": "^/v2/models/[{]name[}]",
         "parameters": {"path.name": {"dictionary": "models", "probability": 0.8},
                        "path.version": {"dictionary": "versions", "probability": 0.8}}},
        {"include-path-regex": REPOSITORY_MODELS,
         "parameters": {"path.name": {"dictionary": "spare", "probability": 0.5}}},
    ],
}
"""Most model calls name a served model and version (else nearly every body would only meet
a 404); half the load/unload calls name `fragile`, which no model call uses."""

SCHEMA = schemathesis.openapi.from_dict(DOCUMENT,
                                        config=schemathesis.Config.from_dict(FUZZ_CONFIG))
FUZZ_SETTINGS = settings(max_examples=25, deadline=None, derandomize=True, database=None,
                         suppress_health_check=list(HealthCheck))


def _refused(schema: str, instance: Any) -> bool:
    """Whether the document's `schema` refuses `instance` (its references resolve in the
    document's components)."""
    root = {"$ref": f"#/components/schemas/{schema}", "components": DOCUMENT["components"]}
    return not OAS30Validator(root).is_valid(instance)


def test_the_document_is_valid_openapi() -> None:
    validate(DOCUMENT)


def test_the_server_serves_the_document(served: Served) -> None:
    status, _, body = served.request("GET", "/openapi.json")
    assert status == 200
    assert json.loads(body) == json.loads(json.dumps(DOCUMENT))


def _tensor(**changes: Any) -> dict[str, Any]:
    """iris's input, which the server takes, with `changes`."""
    return {"name": "X", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2],
            **changes}


@pytest.mark.parametrize("body", [
    {"inputs": []},
    {"inputs": [_tensor(name="")]},
    {"inputs": [_tensor(datatype="FP128")]},
    {"inputs": [_tensor(shape=[True, 4])]},
    {"inputs": [_tensor(shape=[-1, 4])]},
    {"inputs": [{k: v for k, v in _tensor().items() if k != "data"}]},
    {"inputs": [_tensor()], "id": 7},
    {"inputs": [_tensor()], "parameters": [1]},
    {"inputs": [_tensor(data={"a": 1})]},
], ids=["no-inputs", "empty-name", "datatype", "bool-shape", "negative-shape", "no-data",
        "int-id", "list-parameters", "object-data"])
def test_the_infer_schema_refuses_what_the_server_refuses(served: Served,
                                                         body: dict[str, Any]) -> None:
    assert _refused("InferRequest", body)
    status, _ = served.post_json("/v2/models/iris/infer", body)
    assert status == 400


def test_the_infer_schema_accepts_a_request_the_server_answers(served: Served) -> None:
    body = {"id": "a", "inputs": [_tensor(data=[[5.1, 3.5, 1.4, 0.2]])]}
    assert not _refused("InferRequest", body)
    status, _ = served.post_json("/v2/models/iris/infer", body)
    assert status == 200


@pytest.mark.parametrize(("schema", "path", "body"), [
    ("RepositoryIndexRequest", "/v2/repository/index", [1]),
    ("RepositoryIndexRequest", "/v2/repository/index", {"ready": "yes"}),
    ("RepositoryModelRequest", "/v2/repository/models/fragile/load", {"parameters": 1}),
    ("RepositoryModelRequest", "/v2/repository/models/fragile/unload", [1]),
    ("PredictRequest", "/v2/models/iris/predict", {"instances": []}),
    ("PredictRequest", "/v2/models/iris/predict", [[5.1, 3.5, 1.4, 0.2]]),
])
def test_the_other_schemas_refuse_what_the_server_refuses(served: Served, schema: str, path: str,
                                                          body: Any) -> None:
    assert _refused(schema, body)
    status, _ = served.post_json(path, body, {"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert status == 400


def test_every_path_parameter_is_declared() -> None:
    for path, item in DOCUMENT["paths"].items():
        declared = {ref["$ref"].rsplit("/", 1)[1] for ref in item.get("parameters", [])}
        named = {DOCUMENT["components"]["parameters"][p]["name"] for p in declared}
        assert named == set(re.findall(r"{(\w+)}", path)), path


def test_every_answer_with_a_body_has_a_schema() -> None:
    for path, item in DOCUMENT["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            for status, response in operation["responses"].items():
                if "$ref" in response:
                    continue
                for media, content in response.get("content", {}).items():
                    assert "schema" in content, (method, path, status, media)


# -- /docs ---------------------------------------------------------------------------------

ASSET = re.compile(r"""(?:src|href)=["']([^"']+)["']""")
EXPECTED_TYPE = {".css": "text/css", ".js": "text/javascript", ".png": "image/png"}


def test_docs_loads_nothing_from_the_network(served: Served) -> None:
    status, headers, body = served.request("GET", "/docs")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assets = ASSET.findall(body.decode())
    assert any(a.endswith("swagger-ui-bundle.js") for a in assets), assets
    assert any(a.endswith("swagger-ui.css") for a in assets), assets
    assert not [a for a in assets if re.match(r"(https?:)?//", a)]
    assert "https://" not in body.decode() and "http://" not in body.decode()


def test_every_docs_asset_is_served_with_its_type(served: Served) -> None:
    _, _, page = served.request("GET", "/docs")
    for asset in ASSET.findall(page.decode()):
        status, headers, body = served.request("GET", "/" + asset)
        suffix = asset[asset.rindex("."):]
        assert status == 200, asset
        assert headers["content-type"].startswith(EXPECTED_TYPE[suffix]), (asset, headers)
        assert len(body) > 100, asset


def test_the_swagger_ui_script_is_the_bundle(served: Served) -> None:
    _, _, body = served.request("GET", "/docs/static/swagger-ui-bundle.js")
    assert b"SwaggerUIBundle" in body


@pytest.mark.parametrize("name", ["index.html", "..%2F__init__.py", "swagger-ui.js.map"])
def test_docs_serves_no_other_file(served: Served, name: str) -> None:
    status, _, body = served.request("GET", f"/docs/static/{name}")
    assert status == 404
    assert b"import" not in body and b"<html" not in body


# -- schemathesis ---------------------------------------------------------------------------

@SCHEMA.exclude(path_regex=REPOSITORY_MODELS).parametrize()
@FUZZ_SETTINGS
def test_the_server_answers_as_documented(case: schemathesis.Case, served: Served) -> None:
    case.call_and_validate(base_url=served.running.http_url, checks=CHECKS)


@SCHEMA.exclude(path_regex=f"^(?!{REPOSITORY_MODELS[1:]})").parametrize()
@FUZZ_SETTINGS
def test_load_and_unload_answer_as_documented(case: schemathesis.Case, served: Served) -> None:
    """After the other operations: the fuzzer may unload any model it has seen named. (It
    excludes the other operations: `include` would widen the config's operation filters.)"""
    case.call_and_validate(base_url=served.running.http_url, checks=CHECKS)
