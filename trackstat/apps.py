from django.apps import AppConfig


class TrackstatConfig(AppConfig):
    name = "trackstat"
    verbose_name = "TrackStat tenancy"
