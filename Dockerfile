# syntax=docker/dockerfile:1
# Parley: `docker build -t parley .` then run with the settings in the environment
# (see .env.example); no secret is baked into the image.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# Builder: resolves the locked dependencies into a self-contained virtualenv.
FROM ${PYTHON_IMAGE} AS builder
ENV VIRTUAL_ENV=/opt/venv
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY bot ./bot
COPY adapters ./adapters
COPY docker/install.sh ./docker/install.sh
RUN sh docker/install.sh

# Runtime: the base interpreter plus the virtualenv, nothing else from the build.
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="parley" \
      org.opencontainers.image.description="OpenAI-compatible models in Slack and Discord threads" \
      org.opencontainers.image.licenses="MIT"
RUN groupadd --system --gid 10001 parley \
    && useradd --system --no-log-init --uid 10001 --gid parley \
       --home-dir /nonexistent --shell /usr/sbin/nologin parley
COPY --from=builder /opt/venv /opt/venv
# Bytecode was compiled at install time; the root filesystem may be read-only at run time.
ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PORT=3000
WORKDIR /app
USER 10001:10001
EXPOSE 3000
# The slim base has no curl; the standard library is enough to probe the liveness route.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '3000') + '/healthz', timeout=4)"]
ENTRYPOINT ["parley"]
CMD ["serve"]
