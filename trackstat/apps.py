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
