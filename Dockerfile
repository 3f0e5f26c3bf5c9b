# Runner image for scheduled chaos runs (deploy/kubernetes/cronjob.yaml):
#   docker build -t ghcr.io/streamspace/chaostoolkit-streamspace:0.1.0 .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md hatch_build.py ./
COPY chaosstream ./chaosstream
# chaostoolkit 1.19 is the newest CLI that installs on Python 3.11 (1.20+ needs 3.12)
RUN pip install . "chaostoolkit>=1.19" \
    && rm -rf /src \
    && useradd --uid 10001 --create-home --home-dir /home/chaos chaos

USER 10001:10001
WORKDIR /tmp
ENV HOME=/tmp
CMD ["chaos", "--help"]
