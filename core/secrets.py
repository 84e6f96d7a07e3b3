"""Secrets kept at rest (webhook signing secrets), sealed with Fernet keys so that a copy of Redis reveals none.

A :class:`SecretBox` holds one or more keys: the first seals, every one opens, so keys rotate without downtime
(put a new key first, reseal what is stored, then drop the old key). A process installs its box once at startup
(:meth:`SecretBox.install`, from its settings); stores that keep secrets take :meth:`SecretBox.installed`.

>>> box = SecretBox([new_key()])
>>> sealed = box.seal("whsec_c2VjcmV0")
>>> "c2VjcmV0" in sealed, box.open(sealed)
(False, 'whsec_c2VjcmV0')
>>> rotated = SecretBox([new_key(), *box.keys])
>>> SecretBox(rotated.keys[:1]).open(rotated.reseal(sealed))
'whsec_c2VjcmV0'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from core.errors import Misconfigured


class SecretKeysMissing(Misconfigured, RuntimeError):
    """No key to seal or open stored secrets with: the process was started without one."""


class UnreadableSecret(Misconfigured, ValueError):
    """A stored secret that none of the keys opens: it was sealed under a key that is no longer configured."""


def new_key() -> str:
    """A new random Fernet key (32 bytes, URL-safe base64)."""
    return Fernet.generate_key().decode()


class SecretBox:
    """Seals and opens short secrets with ``keys`` (Fernet: AES-128-CBC with HMAC-SHA256, timestamped tokens).

    ``keys`` are Fernet keys, newest first; a key that is not one raises ``ValueError``.
    """

    _installed: ClassVar[SecretBox | None] = None

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise ValueError("a SecretBox needs at least one key")
        self.keys = tuple(keys)
        self._fernet = MultiFernet([Fernet(key) for key in self.keys])

    @classmethod
    def parse(cls, keys: str) -> SecretBox:
        """The box of comma-separated ``keys`` (blanks around them ignored)."""
        return cls([key.strip() for key in keys.split(",") if key.strip()])

    def seal(self, secret: str) -> str:
        """``secret`` encrypted under the first key."""
        return self._fernet.encrypt(secret.encode()).decode()

    def open(self, sealed: str) -> str:
        """The secret that ``seal`` made ``sealed`` from, under any of the keys; ``UnreadableSecret`` when none
        opens it."""
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken:
            raise UnreadableSecret("a stored secret was sealed under a key that is not configured") from None

    def reseal(self, sealed: str) -> str:
        """``sealed`` encrypted again under the first key, so that the other keys can be dropped."""
        try:
            return self._fernet.rotate(sealed.encode()).decode()
        except InvalidToken:
            raise UnreadableSecret("a stored secret was sealed under a key that is not configured") from None

    def install(self) -> None:
        """Make this the process's box: the one stores of secrets use (set once at startup)."""
        SecretBox._installed = self

    @classmethod
    def installed(cls) -> SecretBox:
        """The process's box; ``SecretKeysMissing`` when none was installed."""
        if SecretBox._installed is None:
            raise SecretKeysMissing("no secret keys: the process must install a SecretBox at startup")
        return SecretBox._installed
