"""Ceilings measured in this process: what the machine does without any server around it."""

import multiprocessing
import os
import time

import bcrypt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from load import Load

_SIGNING_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def raw_signing(seconds: float) -> Load:
    """RS256 signatures per second with `cryptography` on one core."""
    message = b"x" * 400
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        _SIGNING_KEY.sign(message, padding.PKCS1v15(), hashes.SHA256())
        count += 1
    return Load(count / (time.perf_counter() - start))


def _bcrypt_worker(args: tuple[bytes, float]) -> int:
    hashed, seconds = args
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        bcrypt.checkpw(b"wrong-password", hashed)
        count += 1
    return count


def bcrypt_all_cores(rounds: int, seconds: float) -> Load:
    """bcrypt checks per second with one process per core."""
    hashed = bcrypt.hashpw(b"x", bcrypt.gensalt(rounds))
    cores = os.cpu_count() or 1
    with multiprocessing.Pool(cores) as pool:
        counts = pool.map(_bcrypt_worker, [(hashed, seconds)] * cores)
    return Load(sum(counts) / seconds)
