# syntax=docker/dockerfile:1
# One image for every role of the SOC Agent System; the Helm chart picks the command:
#   web        python -m socproject.serve -b 0.0.0.0 -p 8000 socproject.asgi:application   (the default CMD: Daphne that drains on SIGTERM)
#   worker     celery -A socproject worker -l info
#   beat       celery -A socproject beat -l info --schedule /tmp/celerybeat-schedule
#   migrations python manage.py migrate --noinput
# Build: docker build -t soc-backend:0.1.0 .   (helm/deploy.sh does this for Kind)

# Pinned base. For byte-for-byte reproducible builds, pin the digest too (python:3.11.11-slim-bookworm@sha256:...).
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

# --- build: a virtualenv with the runtime requirements only (no test tools), plus the static files
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
COPY requirements.txt /tmp/requirements.txt
RUN /opt/venv/bin/pip install --only-binary=:all: -r /tmp/requirements.txt
WORKDIR /app
COPY . .
# settings.py refuses to start without a key and allowed hosts when DJANGO_DEBUG is false; these
# throw-away values exist only for collectstatic and are not kept in the image.
RUN DJANGO_SECRET_KEY=collectstatic-only DJANGO_ALLOWED_HOSTS=localhost DATABASE_URL=sqlite:////tmp/build.sqlite3 \
        /opt/venv/bin/python manage.py collectstatic --noinput --verbosity 0 \
    && /opt/venv/bin/python -m compileall -q /app /opt/venv/lib \
    && rm -rf /app/var /tmp/build.sqlite3

# --- runtime: the same base, the virtualenv and the app, owned by root and run as uid 10001
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 soc \
    && useradd --system --uid 10001 --gid soc --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin soc
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
WORKDIR /app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DJANGO_SETTINGS_MODULE=socproject.settings
# Numeric, so Kubernetes can verify runAsNonRoot.
USER 10001:10001
EXPOSE 8000
CMD ["python", "-m", "socproject.serve", "-b", "0.0.0.0", "-p", "8000", "socproject.asgi:application"]
