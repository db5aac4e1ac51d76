# The Liaison image: the `liaison` command and the repository's schemas and examples.
# docker-compose.yml builds it as liaison:dev and runs every service's `liaison ...`
# command in it. No Java: the broker runs in the apache/kafka image.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LIAISON_SCHEMAS_DIR=/app/schemas

WORKDIR /app
COPY . /app

# Installed into site-packages (not editable), so the schemas are found through
# LIAISON_SCHEMAS_DIR. /state is created here, owned by the service user, so that the
# named volume mounted on it starts out writable by that user.
RUN pip install --no-cache-dir . \
    && useradd --create-home --uid 10001 --user-group liaison \
    && mkdir -p /state \
    && chown liaison:liaison /state \
    && chmod 0700 /state

USER liaison

# Compose passes whole commands (`liaison edge run ...`), so there is no ENTRYPOINT.
CMD ["liaison", "--help"]
