"""Identifiers: time-ordered UUIDs (version 7), generated before insert.

Generating ids in the process lets a whole flow tree (parents referring to children) go to
the database in one bulk insert. Ids from one process are strictly increasing (RFC 9562,
method 1: a counter in ``rand_a`` within a millisecond), so in a flow every child's id sorts
after its parent's: writers lock jobs in descending id order, children before parents.
"""

import os
import threading
import time
import uuid

_lock = threading.Lock()
_last_ms = 0
_counter = 0


def new_id() -> str:
    """A UUIDv7 string: 48-bit millisecond time, 12-bit counter, 62 random bits."""
    global _last_ms, _counter
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _last_ms:
            ms = _last_ms
            _counter += 1
            if _counter > 0xFFF:  # counter spent: borrow the next millisecond
                ms += 1
                _counter = 0
        else:
            _counter = 0
        _last_ms = ms
        counter = _counter
    value = (ms & 0xFFFF_FFFF_FFFF) << 80
    value |= 0x7 << 76  # version 7
    value |= counter << 64
    value |= 0b10 << 62  # RFC 9562 variant
    value |= int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    return str(uuid.UUID(int=value))


def is_id(value: str) -> bool:
    """True when ``value`` is a well-formed UUID string."""
    try:
        uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        return False
    return True
