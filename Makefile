# The two set-up commands are `make run` and `make test`; everything else is a convenience.
# bash 4.3+, found on PATH: `make run` waits for the first of its two services to stop (`wait -n`).
SHELL := bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
ISSUER_PORT ?= 8000
RS_PORT ?= 8001

.PHONY: install run test test-fast lint format clean migrate bench demo

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Starts the issuer (:8000) and resource server (:8001) in the foreground; Ctrl-C stops both.
# --no-proxy-headers: the client's address is the TCP peer unless ISSUER_TRUSTED_PROXIES says
# otherwise; uvicorn's own X-Forwarded-For handling would let any local client forge it.
# DEMO ACCOUNT: johndoe / secret123 is created here (and only here) for the README's curl flow.
run: export ISSUER_LOG_FORMAT ?= text
run: $(STAMP)
	$(BIN)/python scripts/generate_keys.py
	echo 'secret123' | $(BIN)/python scripts/create_user.py johndoe \
		--email johndoe@example.com --scope "profile" --password-stdin --exist-ok
	# The resource server's API docs sign users in like any browser app (PKCE, no secret).
	$(BIN)/python scripts/create_client.py api-docs --public --name "API docs" \
		--scope "openid profile" --redirect-uri http://127.0.0.1:$(RS_PORT)/docs/oauth2-redirect \
		--exist-ok
	# Both stop when either does (a port already taken, say): never half a system. The
	# resource server expects the `iss` and `aud` the issuer writes: an ISSUER_URL or
	# ISSUER_AUDIENCE given here is both's (as in docker-compose.yml).
	trap 'kill $$(jobs -p) 2>/dev/null' EXIT; \
	ISSUER_LOG_FORMAT=$${ISSUER_LOG_FORMAT:-text} RS_LOG_FORMAT=$${RS_LOG_FORMAT:-text} \
	ISSUER_URL=$${ISSUER_URL:-http://127.0.0.1:$(ISSUER_PORT)} \
	ISSUER_CORS_ORIGINS=$${ISSUER_CORS_ORIGINS:-'["http://127.0.0.1:$(RS_PORT)"]'} \
	$(BIN)/uvicorn issuer.app:app --host 127.0.0.1 --port $(ISSUER_PORT) --no-proxy-headers & \
	RS_LOG_FORMAT=$${RS_LOG_FORMAT:-text} \
	RS_ISSUER_URL=$${RS_ISSUER_URL:-$${ISSUER_URL:-http://127.0.0.1:$(ISSUER_PORT)}} \
	RS_AUDIENCE=$${RS_AUDIENCE:-$${ISSUER_AUDIENCE:-api}} \
	$(BIN)/uvicorn resource_server.app:app --host 127.0.0.1 --port $(RS_PORT) --no-proxy-headers & \
	wait -n; status=$$?; \
	echo "make run: one service stopped (exit $$status), so the other stops too" >&2; \
	exit $$status

# A narrated run of the whole story on a temporary keys dir and database.
demo: $(STAMP)
	$(BIN)/python scripts/demo.py

# Migrates ISSUER_DATABASE_URL to the schema this version needs (all or nothing).
migrate: $(STAMP)
	$(BIN)/python scripts/migrate.py

# pytest-xdist workers, each taking whole test files (a file's processes and fixtures are
# started once). Three on two cores: the end-to-end tests spend much of their time waiting
# on the processes they start. TEST_WORKERS=0 runs everything in this process.
TEST_WORKERS ?= 3

test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

# The fast tier: no real processes, no browser (one to two minutes).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile -m "not e2e and not browser"

# Side-by-side performance ratios, against our own ceilings and Node peers (about seven minutes);
# needs Debian's wrk and, for bench/peers, Node 20+ and npm (Debian's nodejs and npm are installed
# if node is missing; bench/run.py stops with a message if that Node is older than 20).
# Our services run on Granian as in production; BENCH_SERVER=uvicorn measures them as `make run`
# starts them (see bench/servers.py).
bench: $(STAMP)
	command -v wrk >/dev/null || (apt-get install -y -q wrk || (apt-get update -q && apt-get install -y -q wrk))
	command -v node >/dev/null || (apt-get install -y -q nodejs npm || (apt-get update -q && apt-get install -y -q nodejs npm))
	$(BIN)/python bench/run.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
