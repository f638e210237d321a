"""The ceiling of issuance in one Python process: a bare ASGI app that reads the body, signs a
fixed claims segment with RS256 on the issuer's kind of worker threads and answers fixed JSON.

No client authentication, rate limits, form checks or claims: what is left is the server, the
hand-off to the signing threads and the signature. `make bench` measures it beside
oidc-provider as figure 11's ceiling on the machine (bench/run.py, `issuance_ceiling`).
`WORK_US` adds that many microseconds of Python on the event loop for each token (half
before a `jti`'s worth of `os.urandom` when `URANDOM=1`, half after), to see what the token
path's own Python costs. Run it as our services run and load it as figure 11 does, from
`bench/` with the repository on the path:

    PYTHONPATH=.. SIGN_THREADS=2 WORK_US=30 python -m granian --interface asgi \\
        --loop uvloop --http 1 --no-ws --port 8100 bare_issuer:app
    WRK_METHOD=POST WRK_BODY=a=b wrk -t1 -c32 -d5s -s wrk_json.lua http://127.0.0.1:8100/token
"""

import os
import time

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from starlette.types import Receive, Scope, Send

from resource_server.base64url import b64url_encode
from servicekit.threads import WorkerThreads

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
THREADS = int(os.environ.get("SIGN_THREADS", "2"))
POOL = WorkerThreads(THREADS, "signing") if THREADS else None
HALF_WORK = float(os.environ.get("WORK_US", "0")) / 2e6
URANDOM = os.environ.get("URANDOM") == "1"
# As long as the claims of our client_credentials tokens.
CLAIMS = (
    b'{"iss":"http://127.0.0.1:8000","sub":"client:bench","aud":"api","exp":1795988203,'
    b'"iat":1795987303,"jti":"9NkJWsdlHW8Usebj5b1g6A","client_id":"bench","scope":"read"}'
)
SIGNING_INPUT = "eyJhbGciOiJSUzI1NiIsInR5cCI6ImF0K2p3dCJ9." + b64url_encode(CLAIMS)
HEADERS = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]


def sign(signing_input: str) -> str:
    signature = KEY.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
    return signing_input + "." + b64url_encode(signature)


def busy(seconds: float) -> None:
    """Python work on this thread, holding the GIL, for `seconds`."""
    end = time.perf_counter() + seconds
    scratch: dict[int, str] = {}
    while time.perf_counter() < end:
        for i in range(20):
            scratch[i] = str(i)


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    if HALF_WORK:
        busy(HALF_WORK)
    if URANDOM:
        os.urandom(16)
    if HALF_WORK:
        busy(HALF_WORK)
    token = sign(SIGNING_INPUT) if POOL is None else await POOL.run(sign, SIGNING_INPUT)
    body = b'{"access_token":"' + token.encode() + b'","token_type":"Bearer","expires_in":900}'
    length = (b"content-length", b"%d" % len(body))
    await send({"type": "http.response.start", "status": 200, "headers": [*HEADERS, length]})
    await send({"type": "http.response.body", "body": body})
