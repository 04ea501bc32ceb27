# likeness in a container: the locked dependencies, dlib prebuilt (no compiler), a non-root user and
# the sample data, so that `docker run --rm likeness demo` works on its own.
#
#   docker build -t likeness .
#   docker run --rm likeness demo
#   docker run --rm -v "$PWD:/work" --user "$(id -u):$(id -g)" likeness \
#       scan recordings --consent consent.yaml --fail-on high --format html,sarif,junit --out likeness-report
#
# tests/test_install.py runs every RUN below, as written, in a scratch copy of what the COPY lines
# bring in (the test machines have no container engine): keep each step a plain shell command.
FROM python:3.11-slim

COPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /usr/local/bin/uv

# Bytecode compiled at build time: the image runs as a user who cannot write into site-packages, so every
# process would otherwise recompile scipy and librosa on import. No managed Python: the image has one.
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    NUMBA_CACHE_DIR=/tmp/numba-cache

WORKDIR /app

# The dependencies first, in their own layer, so that a change to the scanner does not reinstall them.
COPY pyproject.toml uv.lock README.md ./
RUN --mount=type=cache,target=/root/.cache/uv uv sync --locked --no-dev --no-install-project

COPY scanner ./scanner
COPY reports/templates ./reports/templates
COPY sample_data ./sample_data
RUN --mount=type=cache,target=/root/.cache/uv uv sync --locked --no-dev --no-editable

# Not root; /work is where the media folder is mounted and where reports and the scan database go.
RUN useradd --create-home --uid 1000 likeness && mkdir -p /work && chown likeness /work
USER likeness
ENV PATH=/app/.venv/bin:$PATH
WORKDIR /work

ENTRYPOINT ["likeness"]
CMD ["--help"]
