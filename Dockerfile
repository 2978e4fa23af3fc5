# check=skip=SecretsUsedInArgOrEnv
# belief-web: one image for web (granian), worker and beat (Celery); see docker-compose.yml.
# The key given to collectstatic below is a placeholder, not a secret: the image holds no key.

# 1. The browser packages, exactly as package-lock.json pins them.
FROM node:20-slim AS frontend
WORKDIR /build
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --loglevel=error

# 2. Compiled translations (msgfmt is not needed at run time). The whole context, because
# git keeps no empty folder: a fresh clone may have no locale/ yet.
FROM python:3.11-slim AS messages
RUN apt-get update \
    && apt-get install -y --no-install-recommends gettext \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /build
COPY . .
RUN mkdir -p locale \
    && find locale -name '*.po' -exec sh -c 'msgfmt --check-format -o "${1%.po}.mo" "$1"' sh {} \;

# 3. The runtime image.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /app

# The pinned dependencies from pyproject.toml (the project itself installs no package).
COPY pyproject.toml ./
RUN pip install .

# Only what settings.STATICFILES_DIRS serves from node_modules.
COPY --from=frontend /build/node_modules/jspsych/dist node_modules/jspsych/dist
COPY --from=frontend /build/node_modules/vega/build node_modules/vega/build
COPY --from=frontend /build/node_modules/vega-lite/build node_modules/vega-lite/build
COPY --from=frontend /build/node_modules/vega-embed/build node_modules/vega-embed/build

COPY . .
COPY --from=messages /build/locale locale

ARG COLLECTSTATIC_SECRET_KEY=collectstatic-only-placeholder-not-used-at-run-time
RUN PRODUCTION=1 SECRET_KEY="$COLLECTSTATIC_SECRET_KEY" python manage.py collectstatic --no-input -v0

# /var/lib/belief-web holds the generated SECRET_KEY (docker/entrypoint.py); a named volume
# mounted there takes this owner on first use.
RUN groupadd --gid 10001 app \
    && useradd --uid 10001 --gid 10001 --create-home --shell /usr/sbin/nologin app \
    && install -d -o app -g app -m 0700 /var/lib/belief-web
USER 10001:10001

EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=10s --start-period=40s --retries=3 \
    CMD ["python", "/app/docker/healthcheck.py", "http://127.0.0.1:8000/healthz"]
ENTRYPOINT ["python", "/app/docker/entrypoint.py"]
CMD ["python", "-m", "common.serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2", "--threads", "2"]
