# syntax=docker/dockerfile:1.7
# A worker: one process per accelerator. Two variants, chosen with --build-arg VARIANT:
#   docker build -f deploy/docker/worker.Dockerfile -t laneway-worker:0.1.0-cpu .
#   docker build -f deploy/docker/worker.Dockerfile --build-arg VARIANT=cuda -t laneway-worker:0.1.0-cuda .
# They differ only in the torch wheel (TORCH_VERSION: the Makefile's pin): the CUDA
# one brings its CUDA runtime as pip packages, the host's NVIDIA driver comes in through
# the NVIDIA container runtime (Kubernetes: the device plugin, nvidia.com/gpu).
ARG PYTHON_VERSION=3.11
ARG VARIANT=cpu
ARG TORCH_VERSION=2.13.0

FROM python:${PYTHON_VERSION}-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN groupadd --system --gid 10001 laneway \
 && useradd --system --uid 10001 --gid laneway --home-dir /var/lib/laneway --create-home laneway

FROM base AS torch-cpu
ARG TORCH_VERSION
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch==${TORCH_VERSION}"

FROM base AS torch-cuda
ARG TORCH_VERSION
ARG CUDA_INDEX=cu128
# Triton compiles a small C launcher for each kernel on first launch (the worker's warm-up,
# before it reports SERVING): without a C compiler every GPU worker fails at start-up.
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
RUN pip install --index-url "https://download.pytorch.org/whl/${CUDA_INDEX}" "torch==${TORCH_VERSION}"

FROM torch-${VARIANT} AS worker
WORKDIR /opt/laneway
COPY pyproject.toml README.md ./
COPY lanes ./lanes
COPY telemetry ./telemetry
COPY gateway ./gateway
COPY laneway ./laneway
COPY workers ./workers
COPY proto ./proto
# torch is already there, so pip keeps that build and adds the rest of pyproject's dependencies.
RUN pip install . && rm -rf build *.egg-info
COPY deploy/docker/grpc_health_probe.py /usr/local/bin/grpc_health_probe.py

USER 10001:10001
WORKDIR /var/lib/laneway
ENV HOME=/var/lib/laneway LANEWAY_DATA_DIR=/var/lib/laneway
EXPOSE 50051 9400
# The standard gRPC health service, for the worker's own service name (Kubernetes uses its
# native grpc probe instead; this is for docker and compose).
HEALTHCHECK --interval=10s --timeout=5s --start-period=120s --retries=3 \
  CMD ["python", "/usr/local/bin/grpc_health_probe.py", "127.0.0.1:50051", "--service", "laneway.worker.v1.Worker"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["laneway"]
CMD ["worker", "--host", "0.0.0.0", "--port", "50051", "--model", "tiny", "--metrics-port", "9400"]
