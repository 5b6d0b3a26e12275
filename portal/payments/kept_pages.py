"""First pages kept drawn per member: Mes paiements and `GET /api/v1/reimbursements`.

The first page (no filter, no cursor) is the one the menu and API clients
reach most. It is kept drawn per member (compressed: a few kB) under a key
made of everything it shows: the member's id, a digest of the code that draws
it, and what the caller adds (the name, the day, the language…), with
`selectors.first_page_version`, the member's lines, stoppages and
beneficiaries in brief: an import adding or changing a line changes it, and
the next request draws the page anew. Only ever looked up with the key of the
logged-in member's own data.

In the shared cache (Redis), sealed: compressed, then encrypted and
authenticated with a key the cache does not hold (SECRET_KEY), bound to its
cache key. The cache keeps no health data in clear, and a value written into
it by anyone else, or moved from another member's key, is refused. In this
process's memory while Redis is unreachable (portal/core/cache.py).
"""

import functools
import hashlib
import logging
import zlib
from collections.abc import Sequence
from importlib import import_module
from pathlib import Path

import django
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.template.loader import get_template

from portal.core import sealing
from portal.core.cache import FallbackCache

logger = logging.getLogger(__name__)
KEPT_SECONDS = 600
cache = FallbackCache()


@receiver(setting_changed)
def _caches_changed(*, setting, **kwargs):
    if setting == "CACHES":
        cache.reset()


class KeptPages:
    """One kind of first page: `name` in its keys and its seal; the templates and
    modules that draw it make the code's digest."""

    def __init__(
        self,
        name: str,
        *,
        label: str,
        templates: Sequence[str] = (),
        modules: Sequence[str] = (),
    ):
        self.name = name
        self.label = label  # in the log line of a refused value
        self.templates = tuple(templates)
        self.modules = tuple(modules)

    @functools.cached_property
    def code_digest(self) -> str:
        """What draws the page: a deployment that changes it changes the keys."""
        digest = hashlib.sha256(django.get_version().encode())
        for name in self.templates:
            digest.update(get_template(name).template.source.encode())
        for module in self.modules:
            digest.update(Path(import_module(module).__file__).read_bytes())
        for path in sorted(Path(settings.LOCALE_PATHS[0]).glob("*/LC_MESSAGES/django.mo")):
            digest.update(path.read_bytes())
        return digest.hexdigest()[:16]

    def key(self, account, version, *shown) -> str:
        """The key of `account`'s page at `version`, with what else it shows."""
        digest = hashlib.sha256(repr((*shown, version)).encode()).hexdigest()
        return f"payments:{self.name}:{account.member_id}:{self.code_digest}:{digest}"

    def get(self, key: str) -> str | None:
        kept = cache.get(key)
        if kept is None:
            return None
        try:
            data = sealing.unseal_bytes(
                kept, purpose=self.name, keys=sealing.secret_keys(), bound_to=key
            )
        except (sealing.UnsealError, TypeError, AttributeError) as error:
            logger.warning("a cached %s was refused: %s", self.label, error)
            return None
        return zlib.decompress(data).decode()

    def set(self, key: str, body: str) -> None:
        sealed = sealing.seal_bytes(
            zlib.compress(body.encode()),
            purpose=self.name,
            keys=sealing.secret_keys(),
            bound_to=key,
        )
        cache.set(key, sealed, KEPT_SECONDS)
