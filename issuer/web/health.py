"""Liveness, readiness and Prometheus metrics."""

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from issuer.web.deps import Database, Keys, Metrics
from issuer.web.openapi import READYZ_RESPONSES
from servicekit.front import HEALTHY

router = APIRouter()


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> Response:
    return HEALTHY


@router.get("/metrics", include_in_schema=False)
async def prometheus(metrics: Metrics) -> Response:
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/readyz", summary="Readiness: database and keys usable", responses=READYZ_RESPONSES)
async def readyz(engine: Database, keyring: Keys) -> JSONResponse:
    """Ready when the database answers and takes writes. `keys` is reported for monitors that
    read it, and is always true: the issuer does not start without a usable key set, and
    keeps its last good one when the store breaks (the log says so), so it can always sign."""
    checks = {"database": await run_in_threadpool(_database_answers, engine)}
    checks["keys"] = keyring.current.signing_key is not None
    ready = all(checks.values())
    return JSONResponse({"ready": ready, **checks}, status_code=200 if ready else 503)


def _database_answers(engine: Engine) -> bool:
    """Whether the database answers and takes writes. A PostgreSQL server that takes none (a
    standby after a failover, which a pooler or a DNS name may still point at) answers reads,
    but every browser sign-in, code, refresh token and revocation is refused there (SQLSTATE
    25006) and answered 503, as while the database is out of reach: not ready either."""
    try:
        with engine.connect() as connection:
            if engine.dialect.name == "postgresql":
                read_only = connection.execute(text("SHOW transaction_read_only")).scalar()
                return read_only == "off"
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError:
        return False
    return True
