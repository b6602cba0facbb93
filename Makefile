# Waymark — the two newcomer commands are `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PORT   ?= 5000

.PHONY: install run test lint typecheck pytest hook e2e-deps service-deps bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: install
	$(BIN)/waymark migrate
	$(BIN)/waymark demo --if-empty
	$(BIN)/waymark serve --host 127.0.0.1 --port $(PORT)

test: install lint typecheck hook e2e-deps service-deps pytest

lint: install
	$(BIN)/ruff check backend tests bench
	$(BIN)/lint-imports  # the layers of docs/architecture.md (pyproject.toml)

typecheck: install
	$(BIN)/mypy

pytest: install
	$(BIN)/pytest -q

# The React hook: its own unit tests, the bundle-size figure and the e2e demo page.
hook:
	@if command -v npm >/dev/null 2>&1 && [ -f frontend-hook/package.json ]; then \
		cd frontend-hook && npm ci --no-audit --no-fund && npm test && npm run build \
		&& npm run size && npm run build:e2e && npm run check:pack && npm run test:install; \
	else \
		echo "SKIP hook: npm or frontend-hook/package.json missing"; \
	fi

# Debian's Chromium for the end-to-end browser tests and nats-server for the JetStream
# tests and cluster drill (each installed only when missing and root).
e2e-deps:
	@if ! command -v chromium >/dev/null 2>&1; then \
		if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
			apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
		else \
			echo "SKIP e2e-deps: chromium missing and cannot apt-get install it"; \
		fi; \
	fi
	@if ! command -v nats-server >/dev/null 2>&1 && [ ! -x /usr/sbin/nats-server ]; then \
		if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
			apt-get update -qq && apt-get install -y -qq nats-server >/dev/null; \
		else \
			echo "SKIP e2e-deps: nats-server missing and cannot apt-get install it"; \
		fi; \
	fi

# Local stand-ins for outside services, in a virtualenv of their own (.venv-services) so
# their pins never meet Waymark's: Ralph, a real learning record store (the xAPI tests and
# bench), and moto's S3-compatible server (warehouse exports to s3://).
SERVICES_STAMP := .venv-services/.installed
service-deps: $(SERVICES_STAMP)

$(SERVICES_STAMP):
	test -x .venv-services/bin/python || $(PYTHON) -m venv .venv-services
	.venv-services/bin/python -m pip install --quiet \
		'ralph-malph[cli,lrs]==5.1.0' 'requests>=2.31' 'bcrypt>=4' 'moto[server]==5.2.5'
	touch $(SERVICES_STAMP)

bench: install service-deps
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .venv-services .pytest_cache .mypy_cache .ruff_cache frontend-hook/node_modules
