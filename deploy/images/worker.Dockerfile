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
COPY deploy/opensearch ./deploy/opensearch
RUN pip install . \
 && useradd --system --no-create-home --shell /usr/sbin/nologin peregrine

# The package is installed into site-packages, away from the checkout layout:
# say where the alert template is.
ENV PEREGRINE_ALERTS_TEMPLATE=/app/deploy/opensearch/alerts-template.json \
    PEREGRINE_HOME=/tmp/peregrine

USER peregrine
CMD ["peregrine", "worker"]
