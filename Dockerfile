# One slim image for both services; docker-compose.yml picks the command.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY issuer ./issuer
COPY resource_server ./resource_server
COPY servicekit ./servicekit
COPY scripts ./scripts
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /app app \
    && mkdir -p /data/keys /data/db \
    && chown -R app:app /data \
    && chmod 700 /data/keys

USER app
# Where the image keeps its state unless told otherwise (compose uses PostgreSQL and the
# database key store instead); /app is not writable by this user.
ENV ISSUER_KEYS_DIR=/data/keys ISSUER_DATABASE_URL=sqlite:////data/db/issuer.db
EXPOSE 8000 8001
# Granian (the production server; `make run` uses uvicorn). It never takes client addresses
# from forwarding headers: the issuer reads them itself (ISSUER_TRUSTED_PROXIES).
CMD ["granian", "--interface", "asgi", "--loop", "uvloop", "--http", "1", "--no-ws", \
     "--host", "0.0.0.0", "--port", "8000", "issuer.app:app"]
