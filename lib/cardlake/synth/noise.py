"""Identity noise: the ways the same person is spelt differently across sources.

Each function returns the noisy value; :func:`noisy_identity` also returns the names of the
noise kinds it applied, which the truth records per source record.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from cardlake.synth import vocab as V
from cardlake.synth.params import SynthParams

_KEYBOARD = "abcdefghijklmnopqrstuvwxyz"


def typo(word: str, rnd: random.Random) -> str:
    """One substitution, transposition, deletion or doubling; always changes the word."""
    if len(word) < 3:
        return word + word[-1]
    for _ in range(10):
        i = rnd.randrange(1, len(word) - 1)
        kind = rnd.randrange(4)
        if kind == 0:
            out = word[:i] + rnd.choice(_KEYBOARD) + word[i + 1 :]
        elif kind == 1:
            out = word[:i] + word[i + 1] + word[i] + word[i + 2 :]
        elif kind == 2:
            out = word[:i] + word[i + 1 :]
        else:
            out = word[:i] + word[i] + word[i:]
        if out != word:
            return out
    return word + "e"


def email_variant(email: str, rnd: random.Random) -> str:
    """Case, plus-tag, dot or domain-alias variant of an address; always differs."""
    local, _, domain = email.partition("@")
    kind = rnd.randrange(4)
    if kind == 0:
        return email.upper() if rnd.random() < 0.5 else email.capitalize()
    if kind == 1:
        return f"{local}+{rnd.choice(('shop', 'bank', 'news', 'x'))}@{domain}"
    if kind == 2 and domain in V.EMAIL_DOMAIN_ALIASES:
        return f"{local}@{V.EMAIL_DOMAIN_ALIASES[domain]}"
    return (
        f"{local.replace('.', '')}.{rnd.randrange(10)}@{domain}"
        if "." in local
        else (f"{local[:2]}.{local[2:]}@{domain}")
    )


def canonical_phone(country: str, national: str) -> str:
    """E.164 form, the truth's phone number."""
    return f"+{V.COUNTRIES[country][1]}{national}"


def phone_variant(country: str, national: str, rnd: random.Random) -> str:
    """A local or international spelling other than plain E.164."""
    cc, trunk = V.COUNTRIES[country][1], V.COUNTRIES[country][2]
    a, b = national[:4], national[4:]
    kind = rnd.randrange(5)
    if kind == 0:
        return f"{trunk}{a} {b}"
    if kind == 1:
        return f"+{cc} {a} {b}"
    if kind == 2:
        return f"00{cc}{national}"
    if kind == 3:
        return f"({trunk}{a}) {b[:3]}-{b[3:]}"
    return f"{trunk}{national}"


@dataclass
class Identity:
    """A person's identity fields as one source spells them."""

    first: str
    last: str
    email: str
    phone: str
    street: str
    city: str
    postcode: str
    noise: list[str]


def noisy_identity(
    *,
    first: str,
    last: str,
    email: str,
    country: str,
    phone: str,
    address: tuple[str, str, str, str],
    params: SynthParams,
    rnd: random.Random,
) -> Identity:
    """Apply each noise kind at its rate and report which ones were applied."""
    noise: list[str] = []
    if first in V.NICKNAMES and rnd.random() < params.nickname_rate:
        first = V.NICKNAMES[first]
        noise.append("nickname")
    if rnd.random() < params.name_typo_rate:
        if rnd.random() < 0.5:
            first = typo(first, rnd)
        else:
            last = typo(last, rnd)
        noise.append("name_typo")
    if rnd.random() < params.name_swap_rate:
        first, last = last, first
        noise.append("name_swap")
    if rnd.random() < params.case_whitespace_rate:
        k = rnd.randrange(3)
        if k == 0:
            first, last = first.upper(), last.upper()
        elif k == 1:
            first, last = first.lower(), last.lower()
        else:
            first, last = f" {first}", f"{last}  "
        noise.append("case_whitespace")
    if rnd.random() < params.email_variant_rate:
        email = email_variant(email, rnd)
        noise.append("email_variant")
    if rnd.random() < params.phone_format_variation_rate:
        phone_out = phone_variant(country, phone, rnd)
        noise.append("phone_format")
    else:
        phone_out = canonical_phone(country, phone)
    street, city, postcode, street_type = address
    if rnd.random() < params.address_abbreviation_rate:
        street_type = V.STREET_ABBREV[street_type] + ("." if rnd.random() < 0.3 else "")
        noise.append("address_abbreviation")
    street = f"{street} {street_type}"
    if rnd.random() < params.missing_field_rate:
        which = rnd.randrange(3)
        if which == 0:
            email = ""
        elif which == 1:
            phone_out = ""
        else:
            postcode = ""
        noise.append("missing_field")
    return Identity(first, last, email, phone_out, street, city, postcode, noise)
