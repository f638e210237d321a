"""Reference issuer written the tutorial's way: HS256 secret, fake user dict, bcrypt in async def.

Kept as close as practical to FastAPI's "OAuth2 with Password (and hashing), Bearer with JWT
tokens" tutorial, so the suite can show what the common approach costs.
"""

import os
from datetime import UTC, datetime, timedelta

import jwt
from fastapi import Depends, FastAPI, HTTPException
from fastapi.security import OAuth2PasswordBearer, OAuth2PasswordRequestForm
from passlib.context import CryptContext

SECRET_KEY = "09d25e094faa6ca2556c818166b7a9563b93f7099f6f0f4caa6cf63b88e8d3e7"
ALGORITHM = "HS256"
pwd_context = CryptContext(
    schemes=["bcrypt"], bcrypt__rounds=int(os.environ.get("REF_ROUNDS", "12"))
)
fake_users_db = {
    "johndoe": {
        "username": "johndoe",
        "hashed_password": pwd_context.hash("secret123"),
        "disabled": False,
    }
}
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="token")
app = FastAPI()


def authenticate_user(username: str, password: str) -> dict | None:
    user = fake_users_db.get(username)
    if not user or not pwd_context.verify(password, user["hashed_password"]):
        return None
    return user


@app.post("/token")
async def login(form_data: OAuth2PasswordRequestForm = Depends()) -> dict[str, str]:
    user = authenticate_user(form_data.username, form_data.password)  # blocks the event loop
    if not user:
        raise HTTPException(401, "Incorrect username or password")
    expire = datetime.now(UTC) + timedelta(minutes=15)
    token = jwt.encode({"sub": user["username"], "exp": expire}, SECRET_KEY, algorithm=ALGORITHM)
    return {"access_token": token, "token_type": "bearer"}


async def get_current_user(token: str = Depends(oauth2_scheme)) -> dict:
    try:
        payload = jwt.decode(token, SECRET_KEY, algorithms=[ALGORITHM])
    except jwt.PyJWTError as exc:
        raise HTTPException(401, "Could not validate credentials") from exc
    user = fake_users_db.get(payload.get("sub"))
    if user is None:
        raise HTTPException(401, "Could not validate credentials")
    return user


@app.get("/users/me")
async def read_users_me(current_user: dict = Depends(get_current_user)) -> dict:
    return {"username": current_user["username"]}


@app.get("/ping")
async def ping() -> dict[str, str]:
    return {"ping": "pong"}
