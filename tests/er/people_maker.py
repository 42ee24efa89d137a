"""Person files the matcher has never seen: built unlike the project's generator (issue 17).

Nothing here is shared with :mod:`cardlake.synth`: names, streets and towns come from Faker in
several locales (each with its own name frequencies), people are drawn from a mixture of those
locales, households share a surname, an address and a phone, and duplicates are corrupted by a
noise model of their own:

- keyboard typos (a neighbouring key), transpositions, deleted and doubled letters;
- a dropped token (second given name, street type), first and last name swapped, nicknames;
- a date of birth with day and month swapped, or one digit wrong;
- people who moved (a new address), changed phone, or use another mailbox;
- each optional field missing at a configured rate.

A mailbox has one owner, as every provider makes sure (namesakes' user names get a number), but
for a family mailbox two people of a household give (the ``families`` profile).

Two shapes, both seeded:

- :func:`make_link_pair`: two files, every person once in each (one true link per record);
- :func:`make_dedupe_file`: one file of clusters of 1 to 5 records.

Columns use their own names (see :data:`MAPPING`) and the two files of a pair write dates in
different formats. ``person`` is the truth and is not in the mapping.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from functools import reduce
from typing import Any

import pandas as pd

MAPPING = {
    "record_id": "rid",
    "given_name": "first",
    "surname": "last",
    "date_of_birth": "born",
    "email": "mail",
    "phone": "tel",
    "address_1": "addr",
    "city": "town",
    "postcode": "zip",
    "country": "land",
}
"""Role -> column of the files made here (``person`` holds the truth)."""

LOCALES = {"en_GB": 0.3, "en_US": 0.2, "de_DE": 0.15, "fr_FR": 0.15, "es_ES": 0.1, "it_IT": 0.1}
_PHONE = {
    "en_GB": ("+44", "7", 10),
    "en_US": ("+1", "", 10),
    "de_DE": ("+49", "15", 11),
    "fr_FR": ("+33", "6", 9),
    "es_ES": ("+34", "6", 9),
    "it_IT": ("+39", "3", 10),
}
_COUNTRY = {
    "en_GB": "GB",
    "en_US": "US",
    "de_DE": "DE",
    "fr_FR": "FR",
    "es_ES": "ES",
    "it_IT": "IT",
}
_MAIL_DOMAINS = (
    "gmail.com",
    "yahoo.com",
    "outlook.com",
    "gmx.de",
    "orange.fr",
    "web.de",
    "hotmail.com",
    "libero.it",
    "icloud.com",
)
_NICK = {
    "william": "bill",
    "robert": "bob",
    "margaret": "peggy",
    "elizabeth": "liz",
    "richard": "rick",
    "michael": "mike",
    "thomas": "tom",
    "james": "jim",
    "katherine": "kate",
    "christopher": "chris",
    "daniel": "dan",
    "joseph": "joe",
}
_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")


@dataclass(frozen=True)
class Profile:
    """How dirty the records are; every rate is per record (or per field of a record)."""

    name: str
    typo: float = 0.15
    """Per name/street/town field: one keyboard typo, transposition, deletion or double."""
    missing: float = 0.1
    """Per optional field (everything but the names): left empty."""
    swap_names: float = 0.02
    nickname: float = 0.05
    drop_token: float = 0.05
    dob_swap: float = 0.03
    dob_digit: float = 0.03
    moved: float = 0.05
    new_phone: float = 0.05
    other_mail: float = 0.05
    household_share: float = 0.15
    """Share of people who live with another person (same surname, address and phone)."""
    name_pool: int = 0
    """When set, given names and surnames are drawn from this many of each, so many people
    share a name (and, e-mail user names being built from names, a similar mailbox)."""
    default_birth: float = 0.0
    """Share of people whose birth date is one default date (a system's minimum-age clamp)."""
    family_mail: float = 0.0
    """Share of households whose two members give one family mailbox (otherwise every
    mailbox has one owner)."""
    placeholder: float = 0.0
    """Per record: a source's filler for a contact it did not take, the same for every such
    record: :data:`PLACEHOLDER_MAIL` and :data:`PLACEHOLDER_TEL` in place of the person's."""


PROFILES = {
    "light": Profile("light", typo=0.1, missing=0.05),
    "heavy": Profile(
        "heavy",
        typo=0.3,
        missing=0.2,
        swap_names=0.05,
        nickname=0.1,
        drop_token=0.1,
        dob_swap=0.05,
        dob_digit=0.05,
        moved=0.1,
        new_phone=0.1,
        other_mail=0.1,
        household_share=0.25,
    ),
    "sparse": Profile("sparse", typo=0.2, missing=0.45, moved=0.08),
    "namesakes": Profile(
        "namesakes", typo=0.1, missing=0.05, household_share=0.0, name_pool=8, default_birth=0.1
    ),
}
"""Named noise profiles; tests and the bench run every one with the same matcher settings."""
# The heavy profile where a third of the households give one family mailbox (a joint
# account's): a mailbox that is proof of one person elsewhere is shared by two here.
PROFILES["families"] = dataclasses.replace(PROFILES["heavy"], name="families", family_mail=0.3)
# The light profile where a quarter of the records carry one source's fillers for the e-mail and
# the phone: one mailbox and one number held by hundreds of people.
PROFILES["placeholders"] = dataclasses.replace(
    PROFILES["light"], name="placeholders", placeholder=0.25
)
PLACEHOLDER_MAIL = "no.email@example.com"
PLACEHOLDER_TEL = "+44 20 7946 0000"


def _typo(rng: random.Random, text: str) -> str:
    if len(text) < 3:
        return text
    i = rng.randrange(1, len(text) - 1)
    kind = rng.random()
    if kind < 0.35:  # neighbouring key on a QWERTY row
        ch = text[i].lower()
        for row in _ROWS:
            j = row.find(ch)
            if j >= 0:
                near = row[max(j - 1, 0) : j] + row[j + 1 : j + 2]
                return text[:i] + rng.choice(near) + text[i + 1 :]
        return text
    if kind < 0.6:
        return text[:i] + text[i + 1] + text[i] + text[i + 2 :]
    if kind < 0.85:
        return text[:i] + text[i + 1 :]
    return text[:i] + text[i] + text[i:]


def _person(rng: random.Random, fakers: dict[str, Any], locale: str) -> dict[str, str]:
    fake = fakers[locale]
    female = rng.random() < 0.5
    first = fake.first_name_female() if female else fake.first_name_male()
    if rng.random() < 0.1:
        first = f"{first} {fake.first_name_female() if female else fake.first_name_male()}"
    last = fake.last_name()
    born = fake.date_between_dates(BORN_FROM, BORN_TO)  # fixed, not relative to today
    prefix, lead, digits = _PHONE[locale]
    body = lead + "".join(rng.choice("0123456789") for _ in range(digits - len(lead)))
    if locale == "en_US":
        body = rng.choice("23456789") + body[1:]
    return {
        "first": first,
        "last": last,
        "born": born.isoformat(),
        "mail": _mail(rng, first, last),
        "tel": f"{prefix} {body}",
        **_address(fake),
        "land": _COUNTRY[locale],
        "locale": locale,
    }


def _mail(rng: random.Random, first: str, last: str, *, digits: bool = False) -> str:
    user = f"{first.split()[0]}{rng.choice(['.', '_', ''])}{last}".lower().replace(" ", "")
    if digits:  # the name is taken at that provider: a number, as people then choose
        user = user + str(rng.randrange(10, 9999))
    else:
        user = user + (str(rng.randrange(10, 99)) if rng.random() < 0.5 else "")
    return f"{user}@{rng.choice(_MAIL_DOMAINS)}"


def mailbox(mail: str) -> str:
    """The mailbox an address reaches: Gmail ignores dots in the user name."""
    user, _, domain = mail.partition("@")
    return f"{user.replace('.', '')}@{domain}" if domain == "gmail.com" else mail


def _address(fake: object) -> dict[str, str]:
    return {
        "addr": fake.street_address().replace("\n", " "),  # type: ignore[attr-defined]
        "town": fake.city(),
        "zip": fake.postcode(),
    }  # type: ignore[attr-defined]


BORN_FROM, BORN_TO = date(1931, 1, 1), date(2007, 12, 31)  # ages 18 to 95 in 2026


def _faker(locale: str, seed: int) -> Any:
    """A seeded Faker whose output does not depend on the process's string-hash salt.

    Some providers build their word lists from sets (it_IT's cities), so the same seed picked
    other towns in another process; those lists are sorted here.
    """
    from faker import Faker

    fake = Faker(locale)
    fake.seed_instance(seed)
    for provider in fake.providers:
        if isinstance(getattr(provider, "cities", None), list):
            provider.cities = sorted(provider.cities)
    return fake


def make_people(n: int, *, seed: int, profile: Profile) -> list[dict[str, str]]:
    rng = random.Random(seed)
    taken: set[str] = set()
    family = random.Random(seed * 7919 + 1)  # its own draws: the other fields stay as they were
    partner: dict[int, int] = {}  # a household member giving the family mailbox -> the first
    fakers = {locale: _faker(locale, seed * 31 + i) for i, locale in enumerate(LOCALES)}
    locales, weights = list(LOCALES), list(LOCALES.values())
    out: list[dict[str, str]] = []
    while len(out) < n:
        locale = rng.choices(locales, weights)[0]
        person = _person(rng, fakers, locale)
        out.append(person)
        if len(out) < n and rng.random() < profile.household_share:
            other = _person(rng, fakers, locale)
            other.update({k: person[k] for k in ("last", "addr", "town", "zip", "tel")})
            if family.random() < profile.family_mail:
                partner[len(out)] = len(out) - 1
            out.append(other)
    if profile.name_pool:
        pool = make_people(profile.name_pool, seed=seed + 1, profile=PROFILES["light"])
        for person in out:
            named = rng.choice(pool)
            person["first"], person["last"] = named["first"], named["last"]
            if rng.random() < profile.default_birth:
                person["born"] = BORN_TO.isoformat()
    for i, person in enumerate(out):  # a mailbox has one owner, as every provider makes sure
        if i in partner:
            continue
        if profile.name_pool or mailbox(person["mail"]) in taken:
            person["mail"] = _mail(rng, person["first"], person["last"])
        while mailbox(person["mail"]) in taken:
            person["mail"] = _mail(rng, person["first"], person["last"], digits=True)
        taken.add(mailbox(person["mail"]))
    for member, first in partner.items():  # ... or a family's, given by both
        out[member]["mail"] = out[first]["mail"]
    for i, person in enumerate(out):
        person["person"] = f"P{i:06d}"
    return out


def _noisy(
    rng: random.Random,
    person: dict[str, str],
    profile: Profile,
    fakers_address: Callable[[str], dict[str, str]],
) -> dict[str, str]:
    rec = dict(person)
    first = rec["first"]
    if rng.random() < profile.nickname and first.split()[0].lower() in _NICK:
        first = _NICK[first.split()[0].lower()].title()
    if " " in first and rng.random() < profile.drop_token * 4:
        first = first.split()[0]
    rec["first"] = first
    for key in ("first", "last", "addr", "town"):
        if rng.random() < profile.typo:
            rec[key] = _typo(rng, rec[key])
    if rng.random() < profile.drop_token:
        tokens = rec["addr"].split()
        if len(tokens) > 2:
            del tokens[rng.randrange(1, len(tokens))]
            rec["addr"] = " ".join(tokens)
    if rng.random() < profile.swap_names:
        rec["first"], rec["last"] = rec["last"], rec["first"]
    year, month, day = rec["born"].split("-")
    if rng.random() < profile.dob_swap and int(day) <= 12:
        month, day = day, month
    if rng.random() < profile.dob_digit:
        which = rng.choice([0, 1])
        if which == 0:
            year = year[:3] + str((int(year[3]) + rng.choice([1, 9])) % 10)
        else:
            day = f"{max(1, min(28, int(day) + rng.choice([-1, 1]))):02d}"
    rec["born"] = f"{year}-{month}-{day}"
    if rng.random() < profile.moved:
        rec.update(fakers_address(rec["locale"]))
    if rng.random() < profile.new_phone:
        rec["tel"] = rec["tel"][:-4] + "".join(rng.choice("0123456789") for _ in range(4))
    if rng.random() < profile.other_mail:
        user, _, _ = rec["mail"].partition("@")
        rec["mail"] = f"{user}{rng.randrange(1, 9)}@{rng.choice(_MAIL_DOMAINS)}"
    for key in ("born", "mail", "tel", "addr", "town", "zip"):
        if rng.random() < profile.missing:
            rec[key] = ""
    if profile.placeholder and rng.random() < profile.placeholder:  # no draw in other profiles
        rec["mail"], rec["tel"] = PLACEHOLDER_MAIL, PLACEHOLDER_TEL
    return rec


def _write_date(iso: str, fmt: str) -> str:
    if not iso:
        return ""
    year, month, day = iso.split("-")
    return {"iso": iso, "dmy": f"{day}/{month}/{year}", "compact": f"{year}{month}{day}"}[fmt]


def _frame(
    rows: list[dict[str, str]], *, prefix: str, date_format: str, rng: random.Random
) -> pd.DataFrame:
    rng.shuffle(rows)
    df = pd.DataFrame(rows)
    df["born"] = [_write_date(d, date_format) for d in df["born"]]
    df.insert(0, "rid", [f"{prefix}{i:06d}" for i in range(len(df))])
    return df[["rid", *[c for c in MAPPING.values() if c != "rid"], "person"]]


def _address_maker(seed: int) -> Callable[[str], dict[str, str]]:
    fakers = {loc: _faker(loc, seed * 17 + i) for i, loc in enumerate(LOCALES)}
    return lambda locale: _address(fakers[locale])


def make_link_pair(n: int, *, profile: Profile, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two files of the same ``n`` people: the first lightly noisy, the second noisy.

    Returns:
        ``(a, b)``; every ``person`` is once in each, so each record has one true link.
    """
    rng = random.Random(seed + 1)
    people = make_people(n, seed=seed, profile=profile)
    moved = _address_maker(seed)
    clean = Profile(
        "a",
        typo=profile.typo / 3,
        missing=profile.missing / 2,
        swap_names=0,
        nickname=0,
        drop_token=0,
        dob_swap=0,
        dob_digit=0,
        moved=0,
        new_phone=0,
        other_mail=0,
    )
    a = [_noisy(rng, p, clean, moved) for p in people]
    b = [_noisy(rng, p, profile, moved) for p in people]
    return (
        _frame(a, prefix="a", date_format="iso", rng=rng),
        _frame(b, prefix="b", date_format="dmy", rng=rng),
    )


def make_dedupe_file(n_people: int, *, profile: Profile, seed: int) -> pd.DataFrame:
    """One file of ``n_people`` people, each in 1 to 5 records (the first as clean as any).

    Cluster sizes 1..5 with weights 40/25/15/12/8 percent.
    """
    rng = random.Random(seed + 2)
    people = make_people(n_people, seed=seed, profile=profile)
    moved = _address_maker(seed)
    rows: list[dict[str, str]] = []
    for p in people:
        size = rng.choices([1, 2, 3, 4, 5], [40, 25, 15, 12, 8])[0]
        rows.extend(_noisy(rng, p, profile, moved) for _ in range(size))
    return _frame(rows, prefix="r", date_format="compact", rng=rng)


def person_records(spark: Any, frames: list[pd.DataFrame]) -> list[Any]:
    """Frames of this module as the matcher's person records, each with its truth.

    Returns:
        One DataFrame per frame: :func:`cardlake.er.to_person_records` of it (dataset
        ``in<i>``, so uids are ``in<i>|<rid>``) and the frame's ``person`` column.
    """
    from pyspark.sql import functions as F

    from cardlake.er import to_person_records

    parts = []
    for i, pdf in enumerate(frames):
        raw = spark.createDataFrame(pdf.astype(str))
        records = to_person_records(raw, mapping=MAPPING, dataset=f"in{i}")
        truth = raw.select(F.concat(F.lit(f"in{i}|"), "rid").alias("uid"), "person")
        parts.append(records.join(truth, on="uid", how="inner").select(*records.columns, "person"))
    return parts


def resolve_frames(
    spark: Any, frames: list[pd.DataFrame], *, settings: Any = None
) -> tuple[Any, Any]:
    """Resolves frames of this module with the matcher and scores them on ``person``.

    Returns ``(ClusterMetrics, Resolution)``; records are ``in<i>|<rid>``.
    """
    from pyspark.sql import DataFrame
    from pyspark.sql import functions as F

    from cardlake.er import evaluate_clusters, resolve_entities

    parts = person_records(spark, frames)
    resolution = resolve_entities(spark, [p.drop("person") for p in parts], settings=settings)
    predicted = resolution.entities_df.select(
        F.concat("source_dataset", F.lit("|"), "record_id").alias("record_id"), "entity_id"
    )
    truths = [
        p.select(F.col("uid").alias("record_id"), F.col("person").alias("true_id")) for p in parts
    ]
    truth = reduce(DataFrame.unionByName, truths)
    return evaluate_clusters(predicted, truth), resolution


def blocking_reach(spark: Any, frames: list[pd.DataFrame]) -> tuple[int, int, int]:
    """How many pairs the matcher's prediction blocking rules choose, and how many true ones.

    Returns:
        ``(candidate pairs, true pairs, true pairs some rule reaches)``: a true pair no rule
        reaches is never scored, so the last over the second bounds the pairwise recall of
        the direct links (clusters may still join it through a third record).
    """
    from pyspark.sql import DataFrame
    from pyspark.sql import functions as F

    from cardlake.er.conflicts import without_fillers
    from cardlake.er.probabilistic import (
        prediction_blocking_rules,
        present_columns,
        with_blocking_keys,
    )

    parts = person_records(spark, frames)
    union = without_fillers(reduce(DataFrame.unionByName, parts))  # as resolve_entities has them
    union = with_blocking_keys([union])[0].localCheckpoint(eager=True)
    other = "l.uid < r.uid" if len(frames) == 1 else "l.source_dataset < r.source_dataset"
    left, right = union.alias("l"), union.alias("r")

    def pairs(condition: str) -> Any:
        return left.join(right, on=F.expr(f"({condition}) AND {other}"), how="inner").select(
            F.col("l.uid").alias("uid_l"), F.col("r.uid").alias("uid_r")
        )

    rules = prediction_blocking_rules(present_columns(union))
    candidates = pairs(rules[0].get_blocking_rule("spark").blocking_rule_sql)
    for rule in rules[1:]:
        candidates = candidates.union(pairs(rule.get_blocking_rule("spark").blocking_rule_sql))
    candidates = candidates.distinct().localCheckpoint(eager=True)  # a pair many rules reach: once
    true_pairs = pairs("l.person = r.person")
    reached = true_pairs.join(candidates, on=["uid_l", "uid_r"], how="left_semi")
    return candidates.count(), true_pairs.count(), reached.count()
