# The production image: gunicorn web, Celery worker and beat all run from it (docker-compose.yml).
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/venv PATH="/opt/venv/bin:$PATH"
RUN pip install --no-cache-dir uv && useradd --create-home --uid 1000 trackstat
WORKDIR /app

COPY pyproject.toml uv.lock .python-version ./
RUN uv sync --frozen --no-dev --no-install-project

COPY . .
RUN DEBUG=0 SECRET_KEY=build-only-not-a-secret-build-only-not-a-secret ALLOWED_HOSTS=build \
    TRACKSTAT_VAR_DIR=/app/var python manage.py collectstatic --noinput \
    && chown -R trackstat /app/var

USER trackstat
EXPOSE 8000
CMD ["gunicorn", "trackstat.wsgi", "--config", "python:trackstat.gunicorn_conf", "--bind", "0.0.0.0:8000", "--workers", "3"]
