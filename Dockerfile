# crossmargin daemon image.
#
#   docker build -t crossmargin .
#   docker run --rm -v $PWD/config.yaml:/etc/crossmargin/config.yaml:ro -p 127.0.0.1:8080:8080 \
#       -e CROSSMARGIN_API_TOKEN=... crossmargin            # `crossmargin run -c …`
#   docker run --rm -v …:/etc/crossmargin/config.yaml:ro crossmargin check -c /etc/crossmargin/config.yaml
#
# The API binds 127.0.0.1 unless told otherwise: in a container set `api.listen: "0.0.0.0:8080"`
# in the config, or the published port (and the HEALTHCHECK's loopback probe still works, but
# nothing outside does).

ARG PYTHON_IMAGE=python:3.11-slim
# Same uv as the Makefile bootstraps, so `uv sync --frozen` reads uv.lock the same way.
ARG UV_VERSION=0.13.9

# ---- build: resolve the locked dependencies into /app/.venv --------------------------------
FROM ${PYTHON_IMAGE} AS build
ARG UV_VERSION
RUN pip install --no-cache-dir "uv==${UV_VERSION}"
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3 \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /app
# Dependencies first: this layer is rebuilt only when the lockfile changes.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
# Then the code. The project is installed editable (uv's default), so /app stays the package
# root: migrations/ is found next to the packages, as in a checkout; the contract artifact the
# product runs (chains/artifacts) travels inside the chains package.
COPY core ./core
COPY chains ./chains
COPY oracles ./oracles
COPY margin ./margin
COPY venues ./venues
COPY daemon ./daemon
COPY migrations ./migrations
RUN uv sync --frozen --no-dev \
    && .venv/bin/python -m compileall -q core chains oracles margin venues daemon migrations

# ---- runtime: the venv and the code, no uv, no build tools ---------------------------------
FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 crossmargin \
    && useradd --system --uid 10001 --gid crossmargin --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin crossmargin
COPY --from=build /app /app
# A writable place for a SQLite database (database_url: sqlite+aiosqlite:////var/lib/crossmargin/
# crossmargin.sqlite3, with a volume mounted there); /etc/crossmargin is meant to be read-only.
RUN mkdir -p /var/lib/crossmargin && chown crossmargin:crossmargin /var/lib/crossmargin
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    CROSSMARGIN_HEALTH_URL=http://127.0.0.1:8080/healthz
WORKDIR /app
USER crossmargin:crossmargin
EXPOSE 8080
# slim has no curl: probe /healthz with the interpreter we ship anyway.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; sys.exit(0 if urllib.request.urlopen(os.environ['CROSSMARGIN_HEALTH_URL'], timeout=4).status == 200 else 1)"]
ENTRYPOINT ["crossmargin"]
CMD ["run", "-c", "/etc/crossmargin/config.yaml"]
