"""Encryption of tokens at rest (Fernet), and fingerprints for naming tokens in logs.

Several keys mean rotation: the first encrypts, every key decrypts (`MultiFernet`), and
`rotate` re-encrypts a value with the first key. Without keys, and only where the operator
allowed it, values are stored with a `plain:` prefix, so that a key added later can still read
them and `miro-bridge rotate-keys` encrypts them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

_PLAIN = b"plain:"


class UndecryptableToken(Exception):
    """A stored token that none of the configured keys decrypts."""


def fingerprint(token: str) -> str:
    """A short, stable, non-reversible name for a token: safe to log."""
    return hashlib.sha256(token.encode()).hexdigest()[:12]


class TokenCipher:
    """Encrypts and decrypts stored tokens with the configured keys."""

    def __init__(self, keys: Sequence[str]) -> None:
        self._fernet = MultiFernet([Fernet(key) for key in keys]) if keys else None

    @property
    def encrypts(self) -> bool:
        """Whether values are encrypted (False: plaintext was explicitly allowed)."""
        return self._fernet is not None

    def encrypt(self, token: str) -> bytes:
        """The stored form of `token`."""
        if self._fernet is None:
            return _PLAIN + token.encode()
        return self._fernet.encrypt(token.encode())

    def decrypt(self, stored: bytes) -> str:
        """The token behind a stored value; raises `UndecryptableToken`."""
        if stored.startswith(_PLAIN):
            return stored[len(_PLAIN) :].decode()
        if self._fernet is None:
            raise UndecryptableToken("token is encrypted but no MIRO_ENCRYPTION_KEY is set")
        try:
            return self._fernet.decrypt(stored).decode()
        except InvalidToken:
            raise UndecryptableToken("no configured key decrypts this token") from None

    def rotate(self, stored: bytes) -> bytes:
        """`stored`, encrypted again with the first key."""
        return self.encrypt(self.decrypt(stored))
