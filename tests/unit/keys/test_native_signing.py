"""OpenSSL through ctypes signs exactly as `cryptography` does, from any thread."""

import threading

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from issuer.keys import native_signing
from issuer.keys.native_signing import native_signer

needs_libcrypto = pytest.mark.skipif(
    native_signing._LIB is None, reason="no OpenSSL 3 libcrypto on this machine"
)


@needs_libcrypto
def test_signatures_equal_cryptographys(rsa_private_key):
    sign = native_signer(rsa_private_key)
    assert sign is not None
    for message in (b"", b"a.b", b"x" * 5000):
        expected = rsa_private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())
        assert sign(message) == expected


@needs_libcrypto
def test_each_thread_signs_with_its_own_context(rsa_private_key):
    sign = native_signer(rsa_private_key)
    assert sign is not None
    public = rsa_private_key.public_key()
    failures: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(20):
                message = f"{n}.{i}".encode()
                public.verify(sign(message), message, padding.PKCS1v15(), hashes.SHA256())
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def test_without_libcrypto_tokens_are_signed_with_cryptography(rsa_private_key, monkeypatch):
    monkeypatch.setattr(native_signing, "_LIB", None)
    assert native_signer(rsa_private_key) is None


@needs_libcrypto
def test_a_signer_that_fails_its_self_check_is_not_used(rsa_private_key, monkeypatch):
    monkeypatch.setattr(native_signing, "_SELF_CHECK_MESSAGE", b"one")
    real = native_signing.NativeSigner.sign
    monkeypatch.setattr(
        native_signing.NativeSigner, "sign", lambda self, data: real(self, data + b"!")
    )
    assert native_signer(rsa_private_key) is None
