from django.apps import AppConfig

from trackstat.signals import practice_timezone_changed


class PatientsConfig(AppConfig):
    name = "patients"

    def ready(self) -> None:
        # Imported here, not at the top: the receivers use models, which may only be imported
        # once the app registry is ready (Django's pattern), not to dodge an import cycle.
        from patients.receivers import practice_timezone_changed_receive

        practice_timezone_changed.connect(
            practice_timezone_changed_receive, dispatch_uid="patients.local_dates_refresh"
        )
