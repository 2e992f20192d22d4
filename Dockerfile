# agentplane on the embedded default; set AGENTPLANE_DATABASE_URL / AGENTPLANE_REDIS_URL
# to run it against PostgreSQL and Redis (then run `agentplane migrate` once first).
FROM python:3.11-slim

RUN useradd --create-home --uid 10001 agentplane
WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir . && mkdir /data && chown agentplane /data

USER agentplane
ENV AGENTPLANE_DATABASE_URL=sqlite:///data/agentplane.db
VOLUME /data
EXPOSE 8090
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8090/healthz')"
CMD ["agentplane", "serve", "--host", "0.0.0.0", "--port", "8090"]
