# One image per service of this project, from the same file:
#
#   docker build --build-arg SERVICE=jd-classifier -t jd-classifier .            # runtime image
#   docker build --build-arg SERVICE=jd-classifier --target dev -t jd-dev .      # --reload, source in /app
#
# Build args:
#   SERVICE       the service to serve (a name under services/), required
#   BASE_IMAGE    python:3.12-slim by default; any Debian-like image with python3 (>= 3.11) and
#                 venv. Machines that cannot pull images use the one scripts/offline-base-image.sh
#                 makes: --build-arg BASE_IMAGE=devenv-base:bookworm
#   PIP_NO_INDEX  1: take every wheel from ./wheelhouse in the context, never from PyPI (the docker
#                 target of devenv fills ./wheelhouse on the host, so builds need no network)
#
# Stages: wheels (every wheel the service needs, built or fetched) → venv (the dependencies,
# installed from those wheels) and app (the project) → runtime (the base image + both, non-root,
# no compilers, no pip). dev adds the source for live update.
# The last stage is the default target, so a plain `docker build` gives the runtime image.

ARG BASE_IMAGE=python:3.12-slim

# -- wheels: dependencies first (cached while pyproject.toml and the wheelhouse do not change),
#    then the project; in two folders, so that a code change rebuilds only the small part
FROM ${BASE_IMAGE} AS wheels
ARG PIP_NO_INDEX=0
ENV PIP_NO_INDEX=${PIP_NO_INDEX} \
    PIP_FIND_LINKS=/wheelhouse \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore
RUN python3 -m venv /opt/build
# "wheelhouse*": the context may have no wheelhouse; pyproject.toml is always there.
COPY pyproject.toml wheelhouse* /wheelhouse/
RUN python3 -c "import tomllib; print('\n'.join(tomllib.load(open('/wheelhouse/pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /requirements.txt \
 && /opt/build/bin/pip wheel --quiet --wheel-dir /wheels/deps --requirement /requirements.txt
COPY pyproject.toml README.md /src/
COPY devenv /src/devenv
COPY services /src/services
RUN /opt/build/bin/pip wheel --quiet --no-deps --wheel-dir /wheels/app /src

# -- venv: the dependencies, installed from those wheels (no pip in it); /opt/app on its path
FROM ${BASE_IMAGE} AS venv
RUN python3 -m venv /opt/build \
 && python3 -m venv --without-pip /opt/venv \
 && /opt/venv/bin/python -c "import sysconfig; open(sysconfig.get_paths()['purelib'] + '/devenv-app.pth', 'w').write('/opt/app\n')"
COPY --from=wheels /wheels/deps /wheels/deps
RUN /opt/build/bin/pip --disable-pip-version-check --no-cache-dir --python /opt/venv/bin/python \
        install --quiet --no-index /wheels/deps/*.whl

# -- app: the project itself, into /opt/app (a layer of its own in the runtime image)
FROM venv AS app
COPY --from=wheels /wheels/app /wheels/app
RUN /opt/build/bin/pip --disable-pip-version-check --no-cache-dir --python /opt/venv/bin/python \
        install --quiet --no-index --no-deps --target /opt/app /wheels/app/*.whl

# -- runtime: what runs in a container or a Pod
FROM ${BASE_IMAGE} AS runtime
RUN groupadd --gid 1001 app \
 && useradd --uid 1001 --gid 1001 --home-dir /app --no-create-home --shell /usr/sbin/nologin app \
 && mkdir -p /app \
 && chown 1001:1001 /app
COPY --from=venv /opt/venv /opt/venv
COPY --from=app /opt/app /opt/app
ENV PATH=/opt/app/bin:/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
USER 1001:1001
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=2)"]
# Last, so that every service shares the layers above.
ARG SERVICE
ENV SERVICE=${SERVICE}
# A shell for $SERVICE; exec so that uvicorn is PID 1 and gets `docker stop`'s SIGTERM.
CMD exec devenv serve $SERVICE --host 0.0.0.0 --port 8080

# -- dev: the source in /app (ahead of the installed copy on sys.path) and --reload, for live update
# (Tilt's live_update syncs ./devenv and ./services into /app; the reloader sees the change).
# No pip here either: a change to pyproject.toml rebuilds the image (Tilt's fall_back_on), so
# nothing is ever installed into a running container; only /app belongs to the app user.
FROM runtime AS dev
COPY --chown=1001:1001 devenv /app/devenv
COPY --chown=1001:1001 services /app/services
ENV PYTHONPATH=/app
CMD exec devenv serve $SERVICE --host 0.0.0.0 --port 8080 --reload

# -- the default target: the runtime image
FROM runtime
