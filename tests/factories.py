import random
from datetime import date

import factory
from django.utils import timezone

from portal.accounts.models import Account
from portal.members.models import Cpam, Member
from portal.members.nir import key_for

PASSWORD = "Correct-Cheval-Agrafe-9"


def random_nir13(sex: str | None = None) -> str:
    sex = sex or random.choice("12")
    year = f"{random.randint(0, 99):02d}"
    month = f"{random.randint(1, 12):02d}"
    department = f"{random.randint(1, 95):02d}"
    commune = f"{random.randint(1, 999):03d}"
    order = f"{random.randint(1, 999):03d}"
    return sex + year + month + department + commune + order


class CpamFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Cpam
        django_get_or_create = ("code",)

    code = "751"
    name = "Paris"


class MemberFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Member

    nir = factory.LazyFunction(lambda: (n := random_nir13()) + key_for(n))
    birth_date = date(1985, 5, 12)
    last_name = "Dupont"
    first_names = "Jeanne"
    sex = "2"
    email = factory.Sequence(lambda i: f"assure{i}@example.org")
    mobile_phone = "+33612345678"
    postal_address = "1 rue de la Paix"
    postal_code = "75002"
    iban = "FR7630006000011234567890189"
    cpam = factory.SubFactory(CpamFactory)


class AccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Account
        skip_postgeneration_save = True

    member = factory.SubFactory(MemberFactory)
    nir = factory.LazyAttribute(lambda o: o.member.nir[:13])
    email = factory.LazyAttribute(lambda o: o.member.email)
    mobile_phone = "+33612345678"
    state = Account.State.ACTIVE
    activated_at = factory.LazyFunction(timezone.now)

    @factory.post_generation
    def password(self, create, extracted, **kwargs):
        self.set_password(extracted or PASSWORD)
        if create:
            self.save()
