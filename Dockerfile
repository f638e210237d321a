# One slim image for both services; docker-compose.yml picks the command.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY issuer ./issuer
COPY resource_server ./resource_server
COPY scripts ./scripts
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /app app \
    && mkdir -p /data/keys /data/db \
    && chown -R app:app /data \
    && chmod 700 /data/keys

USER app
EXPOSE 8000 8001
CMD ["uvicorn", "issuer.app:app", "--host", "0.0.0.0", "--port", "8000", "--no-proxy-headers"]
