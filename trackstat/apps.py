import gc

from django.apps import AppConfig
from django.core.management import call_command
from django.db.models.signals import post_migrate


def cache_tables_create(*, using: str, **kwargs) -> None:
    """After every ``migrate``: the database cache's table, when the configured cache is the
    database (the development default), so no separate ``createcachetable`` step can be
    forgotten. Creates only what is missing."""
    call_command("createcachetable", database=using, verbosity=0)


class TrackstatConfig(AppConfig):
    name = "trackstat"
    verbose_name = "TrackStat tenancy"

    def ready(self) -> None:
        from trackstat.lookups import lookups_register

        lookups_register()
        post_migrate.connect(cache_tables_create, sender=self)
        startup_objects_freeze()


def startup_objects_freeze() -> None:
    """Move every object made while Django started (modules, models, settings: about 100,000
    of them) out of the garbage collector's reach: they live as long as the process, and a
    full collection otherwise walks them all. At 1,000,000 patients that walk took about 50 ms
    of whichever tick it fell in, against an idle tick's 100 ms target; with them frozen a
    full collection takes 2-3 ms. In a worker that forks (Celery's prefork pool, gunicorn)
    the children also stop writing to the pages they share with the parent when they
    collect (Python's ``gc.freeze`` documentation). Objects made later are collected as
    usual."""
    gc.collect()
    gc.freeze()
