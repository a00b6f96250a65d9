# syntax=docker/dockerfile:1
# One image for every role: `journeyman worker`, `journeyman api` and the CLI commands
# (deploy, funnel, validate). The embedded stack (`journeyman up`/`demo`) is not included.

FROM python:3.11.15-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# The whole context with its symlinks: journeyman/{orchestrator,workflows,channels} point at
# the top-level folders, and setuptools follows them when it collects the packages.
COPY . .
# Then fail the build unless all three packages and the SQL migrations were installed (the
# check runs from / so that nothing can be imported from the source tree instead).
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install . \
 && cd / \
 && /opt/venv/bin/python -c "import journeyman.orchestrator.cli, journeyman.workflows.worker, journeyman.channels; from importlib import resources; migrations = resources.files('journeyman.orchestrator.storage').joinpath('migrations'); assert any(m.name.endswith('.sql') for m in migrations.iterdir()), 'no migrations installed'"

FROM python:3.11.15-slim
# JOURNEYMAN_DATA_DIR: `api` and `deploy` write credentials.json there; it is the only path
# the runtime user can write.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    JOURNEYMAN_DATA_DIR=/var/lib/journeyman
RUN groupadd --system --gid 10001 journeyman \
 && useradd --system --uid 10001 --gid journeyman --no-create-home \
        --home-dir /var/lib/journeyman --shell /usr/sbin/nologin journeyman \
 && install -d -o journeyman -g journeyman -m 0700 /var/lib/journeyman
COPY --from=build /opt/venv /opt/venv
COPY journeys/ /app/journeys/
WORKDIR /app
USER journeyman:journeyman
EXPOSE 8000
ENTRYPOINT ["journeyman"]
CMD ["--help"]
