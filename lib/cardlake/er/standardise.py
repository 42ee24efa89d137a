"""Standardisation column functions: ``Column -> Column``, no session, no I/O.

Every function returns null for null, empty or unparseable input, so a downstream comparison
never mistakes "missing" for "equal". Libraries do the work where one is the point:
``phonenumbers`` (in a pandas UDF) for E.164, ``pycountry`` for ISO-3166, ``unicodedata`` for
accent folding. The small lookup tables (titles, nicknames, street abbreviations, country
variants) are general English-language tables, not fitted to any dataset.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Sequence

import pandas as pd
from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql.functions import pandas_udf
from pyspark.sql.types import StringType

TITLES = (
    "mr",
    "mrs",
    "ms",
    "miss",
    "mx",
    "dr",
    "prof",
    "sir",
    "dame",
    "lord",
    "lady",
    "rev",
    "herr",
    "frau",
    "sr",
    "sra",
    "srta",
    "mme",
    "mlle",
    "m",
    "jr",
    "ii",
    "iii",
    "iv",
    "phd",
    "md",
    "esq",
)
"""Honorifics and generational suffixes dropped from names (after lowercasing)."""

NICKNAMES: dict[str, str] = {
    "abby": "abigail",
    "al": "albert",
    "alex": "alexander",
    "andy": "andrew",
    "drew": "andrew",
    "tony": "anthony",
    "becky": "rebecca",
    "ben": "benjamin",
    "benny": "benjamin",
    "bill": "william",
    "billy": "william",
    "will": "william",
    "willy": "william",
    "liam": "william",
    "bob": "robert",
    "bobby": "robert",
    "rob": "robert",
    "robbie": "robert",
    "bert": "robert",
    "cathy": "catherine",
    "kate": "katherine",
    "katie": "katherine",
    "kathy": "katherine",
    "kat": "katherine",
    "chris": "christopher",
    "chuck": "charles",
    "charlie": "charles",
    "dan": "daniel",
    "danny": "daniel",
    "dave": "david",
    "davy": "david",
    "debbie": "deborah",
    "deb": "deborah",
    "dick": "richard",
    "rick": "richard",
    "ricky": "richard",
    "rich": "richard",
    "ed": "edward",
    "eddie": "edward",
    "ted": "edward",
    "ned": "edward",
    "liz": "elizabeth",
    "lizzie": "elizabeth",
    "beth": "elizabeth",
    "betty": "elizabeth",
    "eliza": "elizabeth",
    "fred": "frederick",
    "freddie": "frederick",
    "greg": "gregory",
    "harry": "henry",
    "hank": "henry",
    "jack": "john",
    "johnny": "john",
    "jim": "james",
    "jimmy": "james",
    "jamie": "james",
    "jen": "jennifer",
    "jenny": "jennifer",
    "jeff": "jeffrey",
    "jerry": "gerald",
    "joe": "joseph",
    "joey": "joseph",
    "jon": "jonathan",
    "josh": "joshua",
    "kim": "kimberly",
    "larry": "lawrence",
    "len": "leonard",
    "lenny": "leonard",
    "maggie": "margaret",
    "meg": "margaret",
    "peggy": "margaret",
    "matt": "matthew",
    "mike": "michael",
    "mick": "michael",
    "mickey": "michael",
    "mandy": "amanda",
    "nick": "nicholas",
    "nicky": "nicholas",
    "pat": "patricia",
    "patty": "patricia",
    "paddy": "patrick",
    "pete": "peter",
    "phil": "philip",
    "ron": "ronald",
    "ronnie": "ronald",
    "sam": "samuel",
    "sammy": "samuel",
    "sandy": "sandra",
    "steve": "steven",
    "stevie": "steven",
    "sue": "susan",
    "susie": "susan",
    "tom": "thomas",
    "tommy": "thomas",
    "vicky": "victoria",
    "tori": "victoria",
    "walt": "walter",
    "zach": "zachary",
    "jess": "jessica",
    "jessie": "jessica",
    "nate": "nathan",
    "ollie": "oliver",
    "alf": "alfred",
    "fran": "frances",
    "frank": "francis",
    "gabe": "gabriel",
    "manny": "manuel",
    "pepe": "jose",
    "paco": "francisco",
    "nacho": "ignacio",
    "lupe": "guadalupe",
}
"""Common English (and a few Spanish) short forms to the formal given name."""

STREET_ABBREVIATIONS: dict[str, str] = {
    "st": "street",
    "str": "street",
    "rd": "road",
    "ave": "avenue",
    "av": "avenue",
    "ln": "lane",
    "dr": "drive",
    "drv": "drive",
    "ct": "court",
    "pl": "place",
    "sq": "square",
    "blvd": "boulevard",
    "hwy": "highway",
    "cres": "crescent",
    "cl": "close",
    "gdns": "gardens",
    "tce": "terrace",
    "ter": "terrace",
    "pk": "park",
    "pde": "parade",
    "mt": "mount",
    "cir": "circle",
    "way": "way",
    "grn": "green",
    "apt": "apartment",
    "fl": "floor",
    "n": "north",
    "s": "south",
    "e": "east",
    "w": "west",
}
"""Address-token abbreviations (lowercase, no trailing dot) to their full word."""

DEFAULT_DATE_FORMATS = (
    "yyyy-MM-dd",
    "yyyyMMdd",
    "dd/MM/yyyy",
    "dd-MM-yyyy",
    "dd.MM.yyyy",
    "yyyy/MM/dd",
    "MM/dd/yyyy",
    "d/M/yyyy",
    "d MMM yyyy",
    "MMM d, yyyy",
    "d MMMM yyyy",
    "MMMM d, yyyy",
)
"""Tried in order; day-first before month-first (European sources dominate)."""

MIN_YEAR, MAX_YEAR = 1875, 2100  # a parsed date outside this range is taken as unparseable

COUNTRY_VARIANTS: dict[str, str] = {
    "uk": "GB",
    "u.k.": "GB",
    "great britain": "GB",
    "britain": "GB",
    "england": "GB",
    "scotland": "GB",
    "wales": "GB",
    "northern ireland": "GB",
    "usa": "US",
    "u.s.a.": "US",
    "u.s.": "US",
    "america": "US",
    "united states of america": "US",
    "holland": "NL",
    "the netherlands": "NL",
    "deutschland": "DE",
    "espana": "ES",
    "españa": "ES",
    "italia": "IT",
    "south korea": "KR",
    "korea": "KR",
    "north korea": "KP",
    "russia": "RU",
    "iran": "IR",
    "syria": "SY",
    "vietnam": "VN",
    "laos": "LA",
    "bolivia": "BO",
    "venezuela": "VE",
    "tanzania": "TZ",
    "moldova": "MD",
    "czech republic": "CZ",
    "ivory coast": "CI",
    "turkey": "TR",
    "macedonia": "MK",
    "taiwan": "TW",
    "schweiz": "CH",
    "suisse": "CH",
    "osterreich": "AT",
    "österreich": "AT",
    "belgique": "BE",
    "belgie": "BE",
    "sverige": "SE",
    "norge": "NO",
    "danmark": "DK",
    "suomi": "FI",
    "polska": "PL",
    "eire": "IE",
    "uae": "AE",
}
"""Everyday spellings pycountry does not carry (keys lowercase)."""


def _blank_to_null(col: Column) -> Column:
    return F.when(F.trim(col) == "", F.lit(None)).otherwise(col)


@pandas_udf(StringType())  # type: ignore[call-overload]
def _fold_unicode(values: pd.Series) -> pd.Series:
    # NFKD splits accents from letters; dropping combining marks leaves plain Latin letters.
    def fold(value: object) -> str | None:
        if not isinstance(value, str):  # None, NaN or pd.NA, depending on the Arrow path
            return None
        decomposed = unicodedata.normalize("NFKD", value)
        return "".join(ch for ch in decomposed if not unicodedata.combining(ch))

    # An object Series: pandas 3 would otherwise hand back Arrow-backed chunks Spark rejects.
    return pd.Series([fold(v) for v in values], dtype=object)


def folded_text(col: Column) -> Column:
    """Unicode-normalised (NFKD, accents dropped), lowercased, single-spaced text.

    Args:
        col: any string column.

    Returns:
        The folded string, or null when the input is null or blank.
    """
    text = F.lower(_fold_unicode(col.cast("string")))
    text = F.trim(F.regexp_replace(text, r"\s+", " "))
    return _blank_to_null(text)


def normalised_name(col: Column) -> Column:
    """A person-name part folded, with punctuation and titles or suffixes removed.

    ``" Dr. José  O'Brien-Smith Jr "`` becomes ``"jose obrien-smith"``: apostrophes are
    dropped, hyphens kept, other punctuation becomes a space.
    """
    text = F.regexp_replace(folded_text(col), r"['\u2019`]", "")  # Java regex escape
    text = F.regexp_replace(text, r"[^a-z0-9\- ]", " ")
    titles = "|".join(TITLES)
    text = F.regexp_replace(text, rf"\b({titles})\b", " ")
    text = F.trim(F.regexp_replace(text, r"\s+", " "))
    return _blank_to_null(text)


@functools.cache
def _nickname_pairs() -> tuple[str, ...]:
    return tuple(x for pair in sorted(NICKNAMES.items()) for x in pair)


def canonical_given_name(col: Column) -> Column:
    """:func:`normalised_name` with a known nickname replaced by its formal name (bob → robert).

    Only the first token is looked up, so ``"bob james"`` becomes ``"robert james"``.
    """
    return formal_given_name(normalised_name(col))


def formal_given_name(name: Column) -> Column:
    """A :func:`normalised_name` value with a known nickname as its first token made formal.

    For a column that already holds normalised names: normalising again would give the same
    values, but costs a second pass through the folding UDF (a second Python evaluation per
    row, and ``name`` is used three times below).
    """
    first = F.split(name, " ").getItem(0)
    lookup = literal_map(_nickname_pairs())
    formal = F.coalesce(F.try_element_at(lookup, first), first)
    rest = F.regexp_extract(name, r"^\S+(.*)$", 1)
    return F.when(name.isNull(), F.lit(None)).otherwise(F.concat(formal, rest))


def normalised_email(col: Column) -> Column:
    """Trimmed, lowercased e-mail address; null unless it looks like ``local@domain.tld``."""
    email = F.lower(F.trim(col.cast("string")))
    return F.when(email.rlike(r"^[^@\s]+@[^@\s]+\.[^@\s]+$"), email)


def canonical_email(col: Column) -> Column:
    """The mailbox an address delivers to: plus-tags dropped, Gmail dots dropped.

    ``John.Smith+shop@GoogleMail.com`` becomes ``johnsmith@gmail.com``. Plus-addressing is
    treated as a tag for every domain (the major providers all do); dots are removed only for
    Gmail, the one large provider that ignores them.
    """
    email = normalised_email(col)
    local = F.regexp_replace(F.substring_index(email, "@", 1), r"\+.*$", "")
    domain = F.substring_index(email, "@", -1)
    domain = F.when(domain == "googlemail.com", F.lit("gmail.com")).otherwise(domain)
    local = F.when(domain == "gmail.com", F.regexp_replace(local, r"\.", "")).otherwise(local)
    return F.when(email.isNotNull() & (local != ""), F.concat(local, F.lit("@"), domain))


@functools.cache
def _phone_udf(default_region: str | None):  # type: ignore[no-untyped-def,unused-ignore]
    @pandas_udf(StringType())  # type: ignore[call-overload]
    def e164(numbers: pd.Series, regions: pd.Series) -> pd.Series:
        import phonenumbers

        def parse(number: str | None, region: str | None) -> str | None:
            if not isinstance(number, str) or not number.strip():
                return None
            region = region if isinstance(region, str) else None
            text = number.strip()
            if text.startswith("00"):  # international dialling prefix used in most of Europe
                text = "+" + text[2:]
            try:
                parsed = phonenumbers.parse(text, (region or default_region or "").upper() or None)
            except phonenumbers.NumberParseException:
                return None
            if not phonenumbers.is_possible_number(parsed):
                return None
            return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)

        return pd.Series([parse(n, r) for n, r in zip(numbers, regions, strict=True)], dtype=object)

    return e164


def e164_phone(
    col: Column, region: Column | None = None, *, default_region: str | None = None
) -> Column:
    """A phone number in E.164 (``+447911123456``), parsed by ``phonenumbers``.

    Args:
        col: the number as written (``07911 123456``, ``+44 7911 123456``, ``0044...``).
        region: ISO alpha-2 country per row, used for numbers written without a country code.
        default_region: the region for rows whose ``region`` is null (or when none is given).

    Returns:
        The E.164 string, or null when the number cannot be parsed or is impossible.
    """
    regions = region.cast("string") if region is not None else F.lit(None).cast("string")
    return _phone_udf(default_region)(col.cast("string"), regions)


def normalised_street(col: Column) -> Column:
    """Street line folded, dots and commas dropped, abbreviations expanded (St → street)."""
    text = F.regexp_replace(folded_text(col), r"[.,#]", " ")
    text = F.trim(F.regexp_replace(text, r"\s+", " "))
    tokens = F.split(text, " ")
    lookup = literal_map(tuple(x for kv in sorted(STREET_ABBREVIATIONS.items()) for x in kv))
    expanded = F.transform(tokens, lambda t: F.coalesce(F.try_element_at(lookup, t), t))
    return _blank_to_null(F.array_join(expanded, " "))


def street_number(col: Column) -> Column:
    """The leading house number of a street line (``"12a High St"`` → ``"12a"``), else null."""
    number = F.regexp_extract(F.trim(col.cast("string")), r"^(\d+[A-Za-z]?)\b", 1)
    return _blank_to_null(F.lower(number))


def normalised_postcode(col: Column) -> Column:
    """Postcode uppercased with spaces and punctuation removed (``sw1a 1aa`` → ``SW1A1AA``)."""
    return _blank_to_null(F.upper(F.regexp_replace(col.cast("string"), r"[^A-Za-z0-9]", "")))


def parsed_date(col: Column, *, formats: Sequence[str] = DEFAULT_DATE_FORMATS) -> Column:
    """The first format that parses to a plausible date wins (DateType), else null.

    Args:
        col: a string (or date) column.
        formats: Spark datetime patterns, tried in order; the default is day-first.
    """
    text = F.trim(col.cast("string"))
    candidates = [F.try_to_date(text, fmt) for fmt in formats]
    plausible = [F.when(F.year(c).between(MIN_YEAR, MAX_YEAR), c) for c in candidates]
    return F.coalesce(*plausible)


def _sql_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def literal_map(flat_pairs: Sequence[str]) -> Column:
    """A string-to-string map literal from ``(key, value, key, value, ...)``.

    Written as one SQL ``map(...)`` expression: one call to the JVM, where ``create_map`` of
    ``lit`` columns makes one per value (the country table's 1,932 values cost 1.5 s a use).
    """
    return F.expr("map(" + ", ".join(_sql_string(x) for x in flat_pairs) + ")")


@functools.cache
def _country_pairs() -> tuple[str, ...]:
    import pycountry

    table: dict[str, str] = {}
    for country in pycountry.countries:
        code = country.alpha_2
        for attr in ("alpha_2", "alpha_3", "name", "official_name", "common_name"):
            value = getattr(country, attr, None)
            if value:
                table[value.lower()] = code
                folded = unicodedata.normalize("NFKD", value.lower())
                table["".join(ch for ch in folded if not unicodedata.combining(ch))] = code
    table.update(COUNTRY_VARIANTS)
    # Looked up without a leading "the " (iso_country), so keys are kept without it too.
    for key in [k for k in table if k.startswith("the ")]:
        code = table.pop(key)
        if table.setdefault(key[4:], code) != code:
            raise ValueError(f"country names {key!r} and {key[4:]!r} name different countries")
    return tuple(x for kv in sorted(table.items()) for x in kv)


def iso_country(col: Column) -> Column:
    """ISO-3166 alpha-2 code from a code, an alpha-3 code, or a name (``"Deutschland"`` → DE).

    Returns null when the value is none of these.
    """
    text = F.lower(F.trim(F.regexp_replace(col.cast("string"), r"\s+", " ")))
    # One lookup of the map literal (966 names), each copy parsed and analysed by Spark again.
    return F.try_element_at(literal_map(_country_pairs()), F.regexp_replace(text, r"^the ", ""))
