# Attendance Flows: both Telegram bots in one process.
# Build: docker build -t attendance-flows .   Run: see compose.yaml and docs/deployment.md.

# --- build stage: compilers only here, in case a dependency has no wheel for this platform
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies first, so editing the code does not reinstall them.
COPY setup.cfg pyproject.toml README.md ./
COPY engine/__init__.py engine/__init__.py
COPY integrations/__init__.py integrations/__init__.py
RUN pip install --upgrade pip && pip install .
COPY . .
RUN pip install --no-deps --force-reinstall .

# --- runtime stage
FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --home-dir /app --shell /usr/sbin/nologin app
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY --chown=root:root . /app
# Sessions (Telegram auth keys), local faces and the heartbeat live in data/: the only writable path.
RUN mkdir -p /app/data/sessions && chown -R app:app /app/data && chmod 700 /app/data/sessions
VOLUME ["/app/data"]
USER app

# run.py health reads the heartbeat the runtime refreshes every 30 s (no Telegram round trip).
HEALTHCHECK --interval=60s --timeout=10s --start-period=90s --retries=3 \
    CMD ["python", "run.py", "health", "--live"]
# SIGTERM starts a graceful stop: finish in-flight steps and verifications, then exit 0.
STOPSIGNAL SIGTERM
CMD ["python", "run.py", "run"]
