# The Peregrine worker: Faust agents evaluating rules on the event topics.
# Built by docker-compose.yml (services peregrine-init and peregrine-worker).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY pipeline ./pipeline
COPY agents ./agents
COPY rules ./rules
COPY schemas ./schemas
COPY deploy/opensearch ./deploy/opensearch
COPY deploy/atelier ./deploy/atelier
# Editable install: the package finds rules/, schemas/ and deploy/ beside it in
# /app, as in a checkout, so the image needs no path overrides.
RUN pip install -e . \
 && useradd --system --no-create-home --shell /usr/sbin/nologin peregrine

ENV PEREGRINE_HOME=/tmp/peregrine

USER peregrine
CMD ["peregrine", "worker"]
