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
    sms_from = factory.Sequence(lambda n: f"+1312555{n % 10000:04d}")
    email_from = factory.Sequence(lambda n: f"office{n}@practice.test")


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
