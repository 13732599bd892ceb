# Bosun operator and tool server image (one image, two entry points: `python -m bosun`, `python -m bosun_tools`).
# helm is built from its Go module with the same pin and the same ldflags as the tests use
# (tests/cluster/helm/go.mod, tests/cluster/build.sh): its version, and the Kubernetes version that
# `helm template` assumes without --kube-version, taken from its client-go as helm's own Makefile does.

FROM golang:1.26-bookworm AS helm
WORKDIR /src
COPY tests/cluster/helm/go.mod tests/cluster/helm/go.sum ./
RUN H=helm.sh/helm/v3 \
 && version=$(go list -m -f '{{.Version}}' $H) \
 && client_go=$(go list -m -f '{{.Version}}' k8s.io/client-go) \
 && major=$(( $(echo "$client_go" | cut -d. -f1 | tr -d v) + 1 )) minor=$(echo "$client_go" | cut -d. -f2) \
 && flags="-s -w -X $H/internal/version.version=$version -X $H/internal/version.gitTreeState=clean" \
 && for pkg in pkg/chartutil pkg/lint/rules; do \
      flags="$flags -X $H/$pkg.k8sVersionMajor=$major -X $H/$pkg.k8sVersionMinor=$minor"; \
    done \
 && CGO_ENABLED=0 go build -trimpath -ldflags "$flags" -o /out/helm $H/cmd/helm

# The project is installed as a wheel (--no-editable: the runtime image needs no source tree) and every
# module is compiled to bytecode here (--compile-bytecode), so a pod with a read-only root filesystem starts
# without compiling litellm, langgraph and kopf on each start (and never tries to write __pycache__).
FROM python:3.11-slim-bookworm AS build
COPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /usr/local/bin/uv
ENV UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project --compile-bytecode
COPY operator/ operator/
COPY tools/ tools/
RUN uv sync --frozen --no-dev --no-editable --compile-bytecode \
 && .venv/bin/python -c "import bosun_tools.server"
# (that import writes the bytecode of the modules beartype's import hook rewrites, FastMCP's key_value,
# which --compile-bytecode cannot: without it each start compiles them from source)

FROM python:3.11-slim-bookworm
ENV PATH=/app/.venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 LITELLM_LOCAL_MODEL_COST_MAP=True
COPY --from=build /app/.venv /app/.venv
COPY --from=helm /out/helm /usr/local/bin/helm
WORKDIR /app
USER 65532:65532
# 8080: the operator's /healthz and /readyz (BOSUN_HEALTH_PORT); 8765: the tool server (python -m bosun_tools).
EXPOSE 8080 8765
ENTRYPOINT []
CMD ["python", "-m", "bosun"]
