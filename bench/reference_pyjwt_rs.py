"""Reference resource server written the common way: FastAPI, PyJWT's PyJWKClient in the route."""

import os

import jwt
from fastapi import FastAPI, Header, HTTPException

ISSUER = os.environ["REF_ISSUER_URL"]
jwks_client = jwt.PyJWKClient(f"{ISSUER}/.well-known/jwks.json")
app = FastAPI()


@app.get("/users/me")
async def users_me(authorization: str = Header()) -> dict[str, object]:
    token = authorization.removeprefix("Bearer ")
    try:
        key = jwks_client.get_signing_key_from_jwt(token)
        claims = jwt.decode(token, key.key, algorithms=["RS256"], audience="api", issuer=ISSUER)
    except jwt.PyJWTError as exc:
        raise HTTPException(401, str(exc)) from exc
    return {
        "sub": claims["sub"],
        "username": claims.get("preferred_username"),
        "scope": claims.get("scope", ""),
        "exp": claims["exp"],
    }


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}
