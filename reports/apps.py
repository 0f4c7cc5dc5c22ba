from django.apps import AppConfig
from django.db.models.signals import post_migrate


class ReportsConfig(AppConfig):
    name = "reports"

    def ready(self) -> None:
        from reports.queue import installed_on_migrate

        post_migrate.connect(installed_on_migrate, sender=self)
