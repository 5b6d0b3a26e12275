from django.conf import settings
from django.contrib.auth.hashers import Argon2PasswordHasher


class PortalArgon2Hasher(Argon2PasswordHasher):
    """Argon2id with the parameters of the settings (see docs/security.md).

    Django's hasher already uses Argon2id; hashes made with other parameters
    are upgraded at the next successful login (`must_update`).
    """

    algorithm = "argon2"

    @property
    def time_cost(self):
        return settings.ARGON2_TIME_COST

    @property
    def memory_cost(self):
        return settings.ARGON2_MEMORY_COST

    @property
    def parallelism(self):
        return settings.ARGON2_PARALLELISM
