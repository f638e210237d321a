"""`no_store_json`: the token, introspection, userinfo and error answers."""

import pytest
from starlette.responses import JSONResponse, Response

from issuer.web.responses import no_store_json
from servicekit.http_errors import NO_STORE

BODIES = [
    {"access_token": "eyJ.eyJ.sig", "token_type": "Bearer", "expires_in": 900, "scope": "a b"},
    {"active": True, "aud": ["api", "reports"], "exp": 1795988203, "username": "zoë"},
    {"error": "invalid_client", "error_description": 'no "client" here \\ \u2013 ☃'},
    {"active": False},
]


@pytest.mark.parametrize("body", BODIES)
def test_the_bytes_are_those_jsonresponse_sent(body):
    # Compact UTF-8 JSON, as Starlette's JSONResponse wrote it before: clients see no change.
    assert no_store_json(body).body == JSONResponse(body).body


def test_no_cache_may_keep_it_and_extra_headers_join_the_no_store_ones():
    challenge = 'Basic realm="oauth", charset="UTF-8"'
    response = no_store_json({"error": "invalid_client"}, 401, {"WWW-Authenticate": challenge})
    assert response.status_code == 401
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    assert response.headers["www-authenticate"] == challenge
    assert response.headers["content-type"] == "application/json"
    assert response.headers["content-length"] == str(len(response.body))
    plain = no_store_json({"active": False})
    assert plain.status_code == 200
    assert "www-authenticate" not in plain.headers


@pytest.mark.parametrize("body", BODIES)
@pytest.mark.parametrize("status", [200, 400, 429])
def test_the_headers_are_those_response_would_make(body, status):
    # Made once rather than by `Response` per answer: the same fields, values and order.
    made = no_store_json(body, status)
    expected = Response(made.body, status, NO_STORE, "application/json")
    assert made.status_code == status
    assert made.raw_headers == expected.raw_headers
