from django.apps import AppConfig


class DemoConfig(AppConfig):
    """Demo data for development (``manage.py seed_demo``): the top layer, built on every app."""

    name = "demo"
    verbose_name = "Demo data"
