from django.apps import AppConfig


class MessagingConfig(AppConfig):
    name = "messaging"

    def ready(self) -> None:
        # Imported here, not at the top: it uses the models, which are loaded only once every
        # app config is.
        from messaging import receivers  # noqa: F401 - connects the signal receivers
