# The Slicewatch image: multi-stage, installed from uv.lock, non-root, no compilers in the final stage.
#
#   scripts/image.sh          builds it with podman (`--isolation chroot`) from a Debian 12 base made
#                             locally with debootstrap and `podman import` when it is missing
#
# Stages: `build` makes the virtualenv from the lock file (runtime dependencies only, the project as a
# wheel); `runtime` is python3 and that virtualenv, run as uid 10001; `check`, the last stage, runs
# `slicewatch --version` and `slicewatch check-config` inside the image and checks no compiler is in it.
ARG BASE=localhost/slicewatch-base:bookworm
ARG UV_VERSION=0.13.9

FROM ${BASE} AS build
ARG UV_VERSION
RUN apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
       python3 python3-venv ca-certificates >/dev/null \
    && rm -rf /var/lib/apt/lists/*
# the build host's CA bundle, as a build secret (behind a TLS-inspecting proxy PyPI's certificate is
# signed by the proxy's CA); a secret mount never lands in a layer
RUN --mount=type=secret,id=ca,target=/run/secrets/ca \
    python3 -m venv /opt/uv \
    && PIP_CERT=/run/secrets/ca /opt/uv/bin/pip install --quiet --disable-pip-version-check "uv==${UV_VERSION}"
WORKDIR /src
COPY pyproject.toml uv.lock README.md LICENSE ./
COPY monitor ./monitor
ENV UV_PROJECT_ENVIRONMENT=/opt/slicewatch UV_PYTHON_DOWNLOADS=never UV_PYTHON=/usr/bin/python3 \
    UV_LINK_MODE=copy UV_COMPILE_BYTECODE=1
RUN --mount=type=secret,id=ca,target=/run/secrets/ca \
    SSL_CERT_FILE=/run/secrets/ca /opt/uv/bin/uv sync --frozen --no-editable --no-dev

FROM ${BASE} AS runtime
RUN apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
       python3 ca-certificates >/dev/null \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 10001 --user-group --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin slicewatch
COPY --from=build /opt/slicewatch /opt/slicewatch
COPY deploy/config/slicewatch.yaml /etc/slicewatch/slicewatch.yaml
ENV PATH=/opt/slicewatch/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
WORKDIR /tmp
EXPOSE 9731
ENTRYPOINT ["slicewatch"]
CMD ["run", "--config", "/etc/slicewatch/slicewatch.yaml"]

FROM runtime AS check
RUN slicewatch --version \
    && slicewatch check-config --config /etc/slicewatch/slicewatch.yaml \
    && if command -v gcc || command -v cc || command -v g++; then echo "a compiler is in the image" >&2; exit 1; fi \
    && test "$(id -u)" = 10001
