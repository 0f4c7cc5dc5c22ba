"""factory_boy factories; tenant-owned rows take the practice as a sub-factory."""

from __future__ import annotations

import factory

from trackstat.models import Membership, Practice, Role, User

TEST_PASSWORD = "correct-horse-battery"


class PracticeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Practice

    name = factory.Sequence(lambda n: f"Practice {n}")
    slug = factory.Sequence(lambda n: f"practice-{n}")
    time_zone = "America/New_York"
    # A sender number belongs to one practice: a range no test spells out by hand.
    sms_from = factory.Sequence(lambda n: f"+1773555{n % 10000:04d}")
    email_from = factory.Sequence(lambda n: f"office{n}@practice.test")
    # Marketing email needs the practice's postal address (DESIGN §5.8).
    address_line1 = "1 Test Street"
    city = "Springfield"
    state = "IL"
    postal_code = "62701"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"staff{n}@example.test")
    username = factory.SelfAttribute("email")
    first_name = "Sam"
    last_name = "Staff"
    password = factory.PostGenerationMethodCall("set_password", TEST_PASSWORD)

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    practice = factory.SubFactory(PracticeFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.USER


def _now():
    from django.utils import timezone

    return timezone.now()


class PatientFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "patients.Patient"

    practice = factory.SubFactory(PracticeFactory)
    external_id = factory.Sequence(lambda n: f"P{n:05d}")
    first_name = "Pat"
    last_name = factory.Sequence(lambda n: f"Patient{n}")
    phone = factory.Sequence(lambda n: f"+1312556{n % 10000:04d}")
    email = factory.Sequence(lambda n: f"patient{n}@example.test")


class CaseFactory(factory.django.DjangoModelFactory):
    """Pass ``patient=`` (or ``patient__practice=``); the practice follows the patient's."""

    class Meta:
        model = "patients.Case"

    patient = factory.SubFactory(PatientFactory)
    practice = factory.SelfAttribute("patient.practice")
    external_id = factory.Sequence(lambda n: f"C{n:05d}")


class AppointmentFactory(factory.django.DjangoModelFactory):
    """An appointment written directly: it does not refresh the patient's visit facts (use
    ``patients.sync.appointments.appointments_upsert`` when a test needs them)."""

    class Meta:
        model = "patients.Appointment"

    patient = factory.SubFactory(PatientFactory)
    practice = factory.SelfAttribute("patient.practice")
    external_id = factory.Sequence(lambda n: f"A{n:05d}")
    start = factory.LazyFunction(_now)
    local_date = factory.LazyAttribute(lambda o: o.start.astimezone(o.practice.tz).date())
    booked_at = factory.LazyAttribute(lambda o: o.start)
