"""Encryption of secrets at rest (Fernet: AES-128-CBC + HMAC-SHA256) with the
installation's AGENTPLANE_SECRET_KEY."""

import os

from cryptography.fernet import Fernet, InvalidToken

from agentplane.core.errors import NotConfigured

_key: str | None = None


def configure(key: str | None) -> None:
    global _key
    _key = key


def _fernet() -> Fernet:
    key = _key or os.environ.get("AGENTPLANE_SECRET_KEY")
    if not key:
        raise NotConfigured(
            "AGENTPLANE_SECRET_KEY is not set: generate one with "
            "`python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())'`"
        )
    try:
        return Fernet(key)
    except ValueError:
        raise NotConfigured("AGENTPLANE_SECRET_KEY is not a valid Fernet key") from None


def encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(ciphertext: str) -> str:
    try:
        return _fernet().decrypt(ciphertext.encode()).decode()
    except InvalidToken:
        raise NotConfigured("A stored secret cannot be decrypted with this key") from None
