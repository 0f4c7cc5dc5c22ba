"""``manage.py seed_demo``: a demo practice with one login per role, patients, cases and
appointments (development only)."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from demo.campaigns import demo_campaigns_load
from demo.patients import demo_data_load
from trackstat.models import Membership, Practice, Role, User
from trackstat.services import api_key_create

DEMO_PRACTICE = {
    "name": "Demo Chiropractic & Wellness",
    "slug": "demo",
    "time_zone": "America/Chicago",
    "phone": "+13125550100",
    "address_line1": "100 Main Street",
    "city": "Springfield",
    "state": "IL",
    "postal_code": "62701",
    "sms_from": "+13125550199",
    "email_from": "care@demo-chiro.test",
    "email_from_name": "Demo Chiropractic",
    "online_scheduling_url": "https://demo-chiro.test/book",
}
SECOND_PRACTICE = {
    "name": "Lakeside Spine Center",
    "slug": "lakeside",
    "time_zone": "America/New_York",
    "phone": "+16175550100",
    "sms_from": "+16175550199",
    "email_from": "hello@lakeside-spine.test",
}
# Development-only passwords, printed by the command; seed_demo refuses to run with DEBUG off.
DEMO_LOGINS = [
    ("admin@demo.trackstat.test", "demo-admin-pass", Role.ADMINISTRATOR, "Ada", "Admin"),
    ("manager@demo.trackstat.test", "demo-manager-pass", Role.MANAGER, "Max", "Manager"),
    ("userplus@demo.trackstat.test", "demo-userplus-pass", Role.USER_PLUS, "Uma", "Plus"),
    ("user@demo.trackstat.test", "demo-user-pass", Role.USER, "Ulysses", "User"),
]
OPERATOR_LOGIN = ("operator@trackstat.test", "demo-operator-pass")


class Command(BaseCommand):
    help = "Create (or refresh) the demo practices and one login per role. Development only."

    def add_arguments(self, parser):
        parser.add_argument(
            "--allow-production",
            action="store_true",
            help="Seed even with DEBUG off (the demo passwords are public: do not).",
        )

    @transaction.atomic(durable=True)
    def handle(self, *args, allow_production: bool = False, **options):
        if not settings.DEBUG and not allow_production:
            raise CommandError("seed_demo creates logins with public passwords; DEBUG is off.")
        demo, created = Practice.objects.update_or_create(
            slug=DEMO_PRACTICE["slug"], defaults=DEMO_PRACTICE
        )
        second, _ = Practice.objects.update_or_create(
            slug=SECOND_PRACTICE["slug"], defaults=SECOND_PRACTICE
        )
        for email, password, role, first, last in DEMO_LOGINS:
            user, _ = User.objects.update_or_create(
                email=email, defaults={"first_name": first, "last_name": last, "is_active": True}
            )
            user.set_password(password)
            user.save()
            Membership.objects.update_or_create(practice=demo, user=user, defaults={"role": role})
        # The Administrator also runs the second practice, to show the practice switcher.
        admin = User.objects.get(email=DEMO_LOGINS[0][0])
        Membership.objects.update_or_create(
            practice=second, user=admin, defaults={"role": Role.ADMINISTRATOR}
        )
        operator, _ = User.objects.update_or_create(
            email=OPERATOR_LOGIN[0], defaults={"is_staff": True, "is_superuser": True}
        )
        operator.set_password(OPERATOR_LOGIN[1])
        operator.save()

        loaded = demo_data_load(practice=demo)
        campaigns = demo_campaigns_load(practice=demo)
        self.stdout.write(f"Demo practice: {demo.name} (id {demo.id}, {demo.time_zone})")
        self.stdout.write(
            f"  {loaded['patients']} patients, {loaded['cases']} cases, "
            f"{loaded['appointments']} appointments, {campaigns} new campaigns"
        )
        if created:
            issued = api_key_create(practice=demo, name="Demo EMR", actor="seed_demo")
            self.stdout.write(f"Demo API key (shown once): {issued.secret}")
        self.stdout.write("Demo logins (development only):")
        for email, password, role, _first, _last in DEMO_LOGINS:
            self.stdout.write(f"  {role.label:<14} {email:<32} {password}")
        self.stdout.write(
            f"  {'Operator':<14} {OPERATOR_LOGIN[0]:<32} {OPERATOR_LOGIN[1]}  (/admin/)"
        )
