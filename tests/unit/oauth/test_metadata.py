"""The metadata document, and its cache: a database outage keeps the document built before."""

import json

import pytest
from sqlalchemy.exc import OperationalError

from issuer.oauth.metadata import MetadataCache, metadata_document
from issuer.oidc.authorize import PROMPTS
from issuer.storage.engine import make_engine, make_sessions
from issuer.storage.schema import prepare
from tests.support import FakeClock


class Outage:
    """Sessions whose database can be switched off."""

    def __init__(self, database_url: str):
        self.engine = make_engine(database_url)
        prepare(self.engine)
        self._sessions = make_sessions(self.engine)
        self.down = False

    def __call__(self):
        if self.down:
            raise OperationalError("SELECT", {}, Exception("connection refused"))
        return self._sessions()


@pytest.fixture
def outage(database_url):
    sessions = Outage(database_url)
    yield sessions
    sessions.engine.dispose()


def test_an_outage_keeps_the_document_built_before_and_retries_soon(outage):
    # The audit: an hour into a database outage both metadata URLs answered 503, and a
    # resource server starting then found no keys though the JWKS was served.
    clock = FakeClock(1000.0)
    cache = MetadataCache("https://issuer.test", outage, clock=clock)
    built = cache.rebuild()
    assert json.loads(built)["issuer"] == "https://issuer.test"
    outage.down = True
    clock.advance(3600)
    assert cache.claim_rebuild()
    # The review: every request meanwhile ran its own rebuild, each waiting on the database.
    assert not cache.claim_rebuild() and cache.body() == built
    assert cache.rebuild() == built
    assert not cache.claim_rebuild()
    clock.advance(MetadataCache.RETRY_AFTER_FAILURE)
    assert cache.claim_rebuild()  # tried again soon, not a minute later
    outage.down = False
    assert json.loads(cache.rebuild())["issuer"] == "https://issuer.test"
    assert not cache.claim_rebuild()


def test_with_no_document_built_yet_an_outage_is_an_error(outage):
    outage.down = True
    with pytest.raises(OperationalError):
        MetadataCache("https://issuer.test", outage).rebuild()


def test_the_document_lists_what_the_authorization_endpoint_accepts():
    document = metadata_document("https://issuer.example", [])
    assert set(document["prompt_values_supported"]) == PROMPTS
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert document["id_token_signing_alg_values_supported"] == ["RS256"]
