"""Test configuration: the real settings plus test-speed overrides.

The database and broker come from the environment as usual: SQLite and the filesystem broker
with nothing set, Postgres and Redis in CI (``.ci/run`` sets DATABASE_URL and
CELERY_BROKER_URL).
"""

import os

# DEBUG is off unless set (and then the settings refuse the development SECRET_KEY): the tests
# run on the development defaults, as `make run` does. Only while the settings are read, so
# that a process the tests start gets only the environment it is given.
_debug_was_set = "DEBUG" in os.environ
os.environ.setdefault("DEBUG", "1")
try:
    from trackstat.settings import *  # noqa: F403
    from trackstat.settings import DATABASES, VAR_DIR
finally:
    if not _debug_was_set:
        del os.environ["DEBUG"]

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.InMemoryStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
PUBLIC_BASE_URL = "https://trackstat.test"
# Every continuous campaign's audience template checked against a direct compile.
AUDIENCE_TEMPLATE_VERIFY = True

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not memory, so that a real Celery worker process can open the test database;
    # one per test run, so that runs side by side do not share it.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-{os.getpid()}.sqlite3")}
