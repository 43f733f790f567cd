# The service image: one image, run in a role per container (see docker-compose.yml):
#   provenance serve --role api | worker | all
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PROVENANCE_DATA_DIR=/data \
    PROVENANCE_HOST=0.0.0.0 \
    PROVENANCE_PORT=8000 \
    PROVENANCE_CONTRACT_ARTIFACT=/app/contracts/build/AnchorRegistry.json

WORKDIR /app
# Dependencies first (pinned in pyproject.toml), so code changes do not reinstall them.
COPY pyproject.toml README.md ./
COPY provenance/__init__.py provenance/__init__.py
COPY detector/__init__.py detector/__init__.py
COPY generator/__init__.py generator/__init__.py
COPY frames/__init__.py frames/__init__.py
# torch from PyTorch's CPU index first: PyPI's default Linux wheel is the CUDA build, several GB
# with its nvidia-* dependencies, and nothing here uses a GPU. `pip install .` then finds the pinned
# torch==2.13.0 satisfied by 2.13.0+cpu.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
RUN pip install --extra-index-url "$TORCH_INDEX" "torch==2.13.0+cpu" \
    && pip install . && pip uninstall -y provenance
COPY contracts/build contracts/build
COPY provenance provenance
COPY detector detector
COPY generator generator
COPY frames frames
RUN pip install --no-deps . \
    && useradd --system --uid 10001 --home-dir /data provenance \
    && mkdir -p /data && chown provenance /data

USER provenance
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["provenance", "health"]
CMD ["provenance", "serve", "--role", "all"]
