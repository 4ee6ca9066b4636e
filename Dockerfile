# Production image: gunicorn serving the portal, static files through whitenoise.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 SWITCHYARD_ENV=production STATIC_ROOT=/app/staticfiles
WORKDIR /app
COPY pyproject.toml ./
COPY portal ./portal
COPY onboarding ./onboarding
COPY switchroles ./switchroles
RUN pip install --no-cache-dir .
COPY . .
# collectstatic needs settings but no real secrets or services.
RUN SECRET_KEY=build ALLOWED_HOSTS=build DATABASE_URL=sqlite:////tmp/build.db REDIS_URL=redis://build \
    SWITCHYARD_ENCRYPTION_KEY=build python manage.py collectstatic --noinput
RUN useradd --create-home switchyard
USER switchyard
EXPOSE 8000
CMD ["gunicorn", "portal.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-"]
