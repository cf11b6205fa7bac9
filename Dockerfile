# The one image all three prepull services share. Each workload in deploy/workloads/ names its own command
# (prepull-scheduler, prepull-nodeimage-sync or prepull-puller), so the image sets none.
#
#   docker build -t registry.example.com/prepull:0.1.0 .
#
# Not built or tested by this repository's CI (its machines have no container engine); see docs/deploy.md.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY services ./services
RUN pip install . && rm -rf /src

# A fixed numeric UID, so Kubernetes can verify runAsNonRoot. The puller's DaemonSet overrides it with root to
# reach the CRI socket (deploy/workloads/puller.yaml says why).
RUN useradd --system --uid 65532 --user-group --no-create-home --shell /usr/sbin/nologin prepull
USER 65532:65532
WORKDIR /
