# syntax=docker/dockerfile:1.7
# The gateway: Starlette on uvicorn, no torch (the gateway never imports it).
#   docker build -f deploy/docker/gateway.Dockerfile -t laneway-gateway:0.1.0 .
ARG PYTHON_VERSION=3.11
FROM python:${PYTHON_VERSION}-slim AS gateway

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN groupadd --system --gid 10001 laneway \
 && useradd --system --uid 10001 --gid laneway --home-dir /var/lib/laneway --create-home laneway

# Dependencies first (a layer that survives code changes), then the package without its
# pyproject dependencies: those include torch, which only workers need.
COPY deploy/docker/requirements-gateway.txt /tmp/requirements-gateway.txt
RUN pip install -r /tmp/requirements-gateway.txt
WORKDIR /opt/laneway
COPY pyproject.toml README.md ./
COPY lanes ./lanes
COPY telemetry ./telemetry
COPY gateway ./gateway
COPY laneway ./laneway
COPY workers ./workers
COPY proto ./proto
RUN pip install --no-deps . && rm -rf build *.egg-info
# The policy is data, not package code: a default here, a ConfigMap or volume in production.
COPY policies/default.yaml /etc/laneway/policy.yaml

USER 10001:10001
WORKDIR /var/lib/laneway
ENV HOME=/var/lib/laneway LANEWAY_DATA_DIR=/var/lib/laneway LANEWAY_POLICY=/etc/laneway/policy.yaml
EXPOSE 8000
# /readyz: 503 until a worker is healthy, and again from the first SIGTERM (draining).
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2)"]
# SIGTERM starts the staged drain (gateway/server.py); give it --drain-delay + --drain-grace.
STOPSIGNAL SIGTERM
ENTRYPOINT ["laneway"]
CMD ["gateway", "--host", "0.0.0.0", "--port", "8000"]
