"""`FrontedFastAPI` takes only plain requests for its front routes; the rest go the full way."""

from prometheus_client import CollectorRegistry
from starlette.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send

from servicekit.front import FrontedFastAPI
from servicekit.observability import RequestContext, request_histogram
from tests.support import running


def make_app() -> FrontedFastAPI:
    app = FrontedFastAPI()
    histogram = request_histogram(CollectorRegistry(), "t")

    @app.api_route("/hot", methods=["GET", "HEAD", "POST"])
    async def full() -> PlainTextResponse:
        return PlainTextResponse("full")

    async def front(scope: Scope, receive: Receive, send: Send) -> None:
        await PlainTextResponse("front")(scope, receive, send)

    app.in_context(lambda inner: RequestContext(inner, histogram))
    app.front("GET", "/hot", front)
    return app


async def test_only_plain_requests_take_the_front():
    async with running(make_app()) as client:
        assert (await client.get("/hot")).text == "front"
        assert (await client.get("/hot?x=1")).text == "front"
        assert (await client.get("/hot", headers={"Origin": "http://a.test"})).text == "full"
        assert (await client.post("/hot")).text == "full"
        assert (await client.head("/hot")).status_code == 200
        assert (await client.get("/hot/")).status_code in (307, 404)
        assert "x-request-id" in (await client.get("/hot")).headers
        assert "x-request-id" in (await client.get("/hot", headers={"Origin": "http://a"})).headers


def test_a_front_route_must_exist_in_the_app():
    app = FrontedFastAPI()
    try:
        app.front("GET", "/missing", PlainTextResponse("x"))
    except ValueError as exc:
        assert "/missing" in str(exc)
    else:
        raise AssertionError("a front route without a FastAPI route was accepted")
