"""Kubernetes quantities in the canonical form the API server stores, so that what the operator
renders compares equal to what it reads back (and a resync writes nothing)."""

from __future__ import annotations

import math
import re
from fractions import Fraction

MIB = 2**20
_BINARY = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_BINARY_SUFFIX = {power: suffix for suffix, power in _BINARY.items()}
_DECIMAL_SUFFIX = {power: suffix for suffix, power in _DECIMAL.items()}
_SYNTAX = re.compile(r"^\+?(?P<number>[0-9]+(\.[0-9]*)?|\.[0-9]+)(?P<suffix>[a-zA-Z]*)$")
#: the API server keeps nine decimal places and rounds any finer value up
_NANO = Fraction(1, 10**9)


def canonical_quantity(value: str | int) -> str:
    """The form kube-apiserver stores a quantity in: `4096Mi` is `4Gi`, `1000` is `1k`,
    `0.5` is `500m`, `1.5Gi` is `1536Mi`, `512Ki`-sized values under 1024 bytes are plain."""
    match = _SYNTAX.match(str(value).strip())
    suffix = match["suffix"] if match else None
    if match is None or (suffix not in _BINARY and suffix not in _DECIMAL):
        raise ValueError(f"{value!r} is not a Kubernetes quantity")
    if suffix in _BINARY:
        amount = Fraction(match["number"]) * 2 ** _BINARY[suffix]
    else:
        amount = Fraction(match["number"]) * Fraction(10) ** _DECIMAL[suffix]
    amount = math.ceil(amount / _NANO) * _NANO
    if amount == 0:
        return "0"
    # Binary amounts stay binary only when whole and at least 1Ki, as resource.Quantity does.
    if suffix in _BINARY and amount >= 1024 and amount.denominator == 1:
        return _binary(int(amount))
    return _decimal(amount)


def _binary(amount: int) -> str:
    power = 0
    while amount % 1024 == 0 and power < 60:
        amount //= 1024
        power += 10
    return f"{amount}{_BINARY_SUFFIX[power]}"


def _decimal(amount: Fraction) -> str:
    mantissa, exponent = int(amount / _NANO), -9
    while mantissa % 10 == 0:
        mantissa //= 10
        exponent += 1
    shift = exponent % 3  # exponents are multiples of three: 1500 stays 1500, not 1.5k
    mantissa, exponent = mantissa * 10**shift, exponent - shift
    if exponent > 18:
        mantissa, exponent = mantissa * 10 ** (exponent - 18), 18
    return f"{mantissa}{_DECIMAL_SUFFIX[exponent]}"


def byte_quantity(size: int) -> str:
    """Bytes rounded up to a MiB, in canonical form."""
    return canonical_quantity(f"{math.ceil(size / MIB)}Mi")
