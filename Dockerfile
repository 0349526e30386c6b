# bkvy image for docker-compose.yml (docs/SCALING.md). Config is mounted at /app/config, secrets come from .env.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt
COPY . .
RUN useradd --system --home /app bkvy && mkdir -p /app/logs && chown bkvy: /app/logs
USER bkvy
EXPOSE 10006
# --workers 2 needs REDIS_URL (docker-compose.yml sets it); each worker is one process on one core.
CMD ["python", "main.py", "--host", "0.0.0.0", "--port", "10006", "--workers", "2"]
