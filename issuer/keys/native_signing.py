"""RS256 signatures on every core: OpenSSL's `EVP_PKEY_sign` called through `ctypes`.

`cryptography` (50.x, measured here) holds the GIL while it computes an RSA signature, so
threads that sign with it take turns on one core. `ctypes` releases the GIL around each
foreign call, so N signing threads use N cores, as Node's libuv pool does. This is OpenSSL's
own RSASSA-PKCS1-v1_5 with SHA-256, nothing hand-written: Python hashes the signing input
(`hashlib`) and OpenSSL signs the digest.

Used only when the system's `libcrypto` (OpenSSL 3) loads and a self-check passes: PKCS#1
v1.5 is deterministic, so its signature must equal `cryptography`'s, byte for byte, for the
same key and message. Otherwise `native_signer` returns None and tokens are signed with
`cryptography` (one core). `ISSUER_NATIVE_SIGNING=0` turns it off.
"""

import ctypes
import ctypes.util
import hashlib
import logging
import os
import threading
from collections.abc import Callable

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

log = logging.getLogger(__name__)

_RSA_PKCS1_PADDING = 1
_SELF_CHECK_MESSAGE = b"eyJhbGciOiJSUzI1NiJ9.c2VsZi1jaGVjaw"


def _load_libcrypto() -> ctypes.CDLL | None:
    if os.environ.get("ISSUER_NATIVE_SIGNING", "1") == "0":
        return None
    name = ctypes.util.find_library("crypto")
    if name is None:
        return None
    try:
        lib = ctypes.CDLL(name)  # CDLL, not PyDLL: the GIL is released during each call
        lib.OpenSSL_version_num.argtypes = []
        lib.OpenSSL_version_num.restype = ctypes.c_ulong
        if lib.OpenSSL_version_num() < 0x30000000:
            return None  # EVP_PKEY_CTX_set_signature_md is a function from OpenSSL 3 on
        vp, size = ctypes.c_void_p, ctypes.c_size_t
        signatures: dict[str, tuple[list[type], type | None]] = {
            "d2i_AutoPrivateKey": ([vp, ctypes.POINTER(vp), ctypes.c_long], vp),
            "EVP_PKEY_free": ([vp], None),
            "EVP_PKEY_get_size": ([vp], ctypes.c_int),
            "EVP_PKEY_CTX_new": ([vp, vp], vp),
            "EVP_PKEY_CTX_free": ([vp], None),
            "EVP_PKEY_sign_init": ([vp], ctypes.c_int),
            "EVP_PKEY_CTX_set_rsa_padding": ([vp, ctypes.c_int], ctypes.c_int),
            "EVP_PKEY_CTX_set_signature_md": ([vp, vp], ctypes.c_int),
            "EVP_sha256": ([], vp),
            "EVP_PKEY_sign": (
                [vp, ctypes.c_char_p, ctypes.POINTER(size), ctypes.c_char_p, size],
                ctypes.c_int,
            ),
        }
        for function, (argtypes, restype) in signatures.items():
            getattr(lib, function).argtypes = argtypes
            getattr(lib, function).restype = restype
    except (OSError, AttributeError):
        return None
    return lib


_LIB = _load_libcrypto()


class NativeSigner:
    """Signs `data` with one RSA private key; each thread gets its own OpenSSL context."""

    def __init__(self, lib: ctypes.CDLL, key: rsa.RSAPrivateKey):
        self._lib = lib
        der = key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        buffer = ctypes.create_string_buffer(der, len(der))
        cursor = ctypes.c_void_p(ctypes.addressof(buffer))
        self._pkey = lib.d2i_AutoPrivateKey(None, ctypes.byref(cursor), len(der))
        ctypes.memset(buffer, 0, len(der))
        if not self._pkey:
            raise ValueError("OpenSSL could not read the key")
        self._size = lib.EVP_PKEY_get_size(self._pkey)
        self._sha256 = lib.EVP_sha256()
        self._local = threading.local()
        self._contexts: list[int] = []
        self._lock = threading.Lock()

    def sign(self, data: bytes) -> bytes:
        """RSASSA-PKCS1-v1_5 with SHA-256 over `data` (the GIL is released while signing)."""
        context = getattr(self._local, "context", None)
        if context is None:
            context = self._local.context = self._new_context()
        digest = hashlib.sha256(data).digest()
        signature = ctypes.create_string_buffer(self._size)
        length = ctypes.c_size_t(self._size)
        if self._lib.EVP_PKEY_sign(context, signature, ctypes.byref(length), digest, 32) != 1:
            raise RuntimeError("EVP_PKEY_sign failed")
        return signature.raw[: length.value]

    def _new_context(self) -> int:
        lib = self._lib
        context = lib.EVP_PKEY_CTX_new(self._pkey, None)
        if not context:
            raise RuntimeError("EVP_PKEY_CTX_new failed")
        with self._lock:
            self._contexts.append(context)
        ok = (
            lib.EVP_PKEY_sign_init(context) == 1
            and lib.EVP_PKEY_CTX_set_rsa_padding(context, _RSA_PKCS1_PADDING) == 1
            and lib.EVP_PKEY_CTX_set_signature_md(context, self._sha256) == 1
        )
        if not ok:
            raise RuntimeError("setting up the RSA signing context failed")
        return int(context)

    def __del__(self) -> None:
        # Only when no thread holds this signer any more (each call holds a reference).
        lib = getattr(self, "_lib", None)
        if lib is None or not getattr(self, "_pkey", None):
            return
        for context in getattr(self, "_contexts", ()):
            lib.EVP_PKEY_CTX_free(context)
        lib.EVP_PKEY_free(self._pkey)


def native_signer(key: rsa.RSAPrivateKey) -> Callable[[bytes], bytes] | None:
    """A GIL-free RS256 signing function for `key`, or None (sign with `cryptography`)."""
    if _LIB is None:
        return None
    try:
        signer = NativeSigner(_LIB, key)
        expected = key.sign(_SELF_CHECK_MESSAGE, padding.PKCS1v15(), hashes.SHA256())
        if signer.sign(_SELF_CHECK_MESSAGE) != expected:
            raise RuntimeError("its signature differs from cryptography's")
    except (ValueError, RuntimeError, OSError) as exc:
        log.warning("signing with cryptography on one core: native signing unusable (%s)", exc)
        return None
    return signer.sign
