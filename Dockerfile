# personae daemon on CPU with the embedded default models and the default cast.
#
#   docker build -t personae .
#   docker run -p 8765:8765 personae
#
# The install steps are the README's (scripts/setup.sh); models are prepared at build
# time so a container starts in seconds and never needs the network.
FROM python:3.11-slim-bookworm

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends espeak-ng \
 && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 10001 personae
USER personae
WORKDIR /home/personae/app

ENV PERSONAE_CACHE_DIR=/home/personae/cache \
    PERSONAE_HOST=0.0.0.0 \
    PERSONAE_PORT=8765 \
    HF_HUB_OFFLINE=1 \
    PYTHONUNBUFFERED=1

COPY --chown=personae:personae pyproject.toml setup.py constraints.txt README.md ./
COPY --chown=personae:personae scripts/ scripts/
COPY --chown=personae:personae sdk/ sdk/
COPY --chown=personae:personae daemon/ daemon/
COPY --chown=personae:personae training/ training/
RUN scripts/setup.sh && rm -rf /home/personae/.cache/pip

EXPOSE 8765
HEALTHCHECK --interval=15s --timeout=3s --start-period=90s --retries=3 \
  CMD python -c "import urllib.request,os; urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"PERSONAE_PORT\"]}/healthz', timeout=2)"
CMD [".venv/bin/personae", "serve"]
