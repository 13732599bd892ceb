# Bosun operator and tool server image (one image, two entry points: `python -m bosun`, `python -m bosun_tools`).
# helm is built from its Go module with the same pin as the tests use (tests/cluster/helm/go.mod).

FROM golang:1.26-bookworm AS helm
WORKDIR /src
COPY tests/cluster/helm/go.mod tests/cluster/helm/go.sum ./
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/helm helm.sh/helm/v3/cmd/helm

FROM python:3.11-slim-bookworm AS build
COPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /usr/local/bin/uv
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY operator/ operator/
COPY tools/ tools/
RUN uv sync --frozen --no-dev

FROM python:3.11-slim-bookworm
ENV PATH=/app/.venv/bin:$PATH PYTHONUNBUFFERED=1 LITELLM_LOCAL_MODEL_COST_MAP=True
COPY --from=build /app /app
COPY --from=helm /out/helm /usr/local/bin/helm
WORKDIR /app
USER 65532:65532
ENTRYPOINT []
CMD ["python", "-m", "bosun"]
