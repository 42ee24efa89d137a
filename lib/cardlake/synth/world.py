"""The hidden world: persons, their archetypes, trajectories, keys, merchants and FX.

Built once per run from the seed alone, for the whole history, so any month's drop can be
generated on its own and match the full run.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from cardlake.synth import vocab as V
from cardlake.synth.national_id import national_ids
from cardlake.synth.params import SynthParams
from cardlake.synth.rng import np_rng

MAX_MOVES = 2
NOT_JOINED, ACTIVE, DECLINING, CHURNED = 0, 1, 2, 3
ENGAGEMENT_STATES = ("not_joined", "active", "declining", "churned")
TRAJECTORIES = ("stable", "growing", "dip", "declining")


@dataclass
class Merchants:
    """Reference merchants; arrays are indexed by merchant number."""

    merchant_id: list[str]
    name: list[str]
    mcc: np.ndarray  # index into vocab.MCCS
    country: list[str]
    city: list[str]
    online: np.ndarray
    opened: np.ndarray  # datetime64[D]
    opened_m: np.ndarray  # month index of opening, negative before the history
    # Compromise windows: merchant number, first day, last day (datetime64[D], inclusive).
    compromised: list[tuple[int, np.datetime64, np.datetime64]]


@dataclass
class World:
    """Everything that is true about the simulated customers, for the whole history."""

    params: SynthParams
    months: list[str]
    month_starts: np.ndarray  # datetime64[D], n_months + 1 (the last is the end bound)
    n: int
    person_id: list[str]
    archetype: np.ndarray
    trajectory: np.ndarray
    gender: np.ndarray
    first: list[str]
    last: list[str]
    birth: np.ndarray
    marital: np.ndarray
    education: np.ndarray
    occupation: np.ndarray
    income: np.ndarray
    country: list[str]
    currency: list[str]
    addresses: list[Addresses]  # [version][person] -> street, city, postcode, street type
    email: list[str]
    phone: list[str]  # national significant number, digits only
    national_id: list[str]  # canonical, see cardlake.synth.national_id
    household: np.ndarray  # -1 when none
    join_date: np.ndarray
    join_m: np.ndarray  # delivery month of the first profile (0 for existing customers)
    churn_m: np.ndarray  # first month with no activity; n_months if never
    engagement: np.ndarray  # [n, n_months] in [0, 1]
    state: np.ndarray  # [n, n_months] engagement state code
    plan: np.ndarray  # [n, n_months]
    device_ver: np.ndarray  # [n, n_months]
    device_os: np.ndarray  # [n, n_months]
    addr_ver: np.ndarray  # [n, n_months]
    crm_id: list[str]
    fin_id: list[str]
    demo_id: list[str]
    app_user_id: list[str]
    contact_id: list[str]
    wallet_id: list[str]
    card_ids: list[tuple[str, ...]]
    dup_crm: dict[int, tuple[str, int]]  # person -> (second crm id, month it appears)
    device_owner: np.ndarray  # whose devices a person uses (a household may share one)
    device_tokens: list[list[str]]  # [person][device version] -> opaque device id
    dup_device: dict[int, str]  # person -> the other device a duplicate sign-up came from
    in_demographics: np.ndarray
    in_app: np.ndarray
    credit_score: np.ndarray
    has_debt: np.ndarray
    merchants: Merchants
    fx_days: np.ndarray  # datetime64[D]
    fx: np.ndarray  # [n_days, len(CURRENCIES)] units per USD

    def device_id(self, person: int, month: int) -> str:
        """The device a person uses in a month: an opaque token (changes bump the version)."""
        owner = int(self.device_owner[person])
        return self.device_tokens[owner][int(self.device_ver[owner, month])]

    def month_index(self, month: str) -> int:
        """Index of a ``YYYY-MM`` month in the history."""
        return self.months.index(month)


ISSUER_PREFIX = "453957"  # the synthetic issuer's BIN (a Visa-shaped prefix)


def luhn_check_digit(body: str) -> str:
    """The digit that makes ``body`` + digit pass the Luhn check."""
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:  # doubled: these are odd positions once the check digit is appended
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return str((10 - total % 10) % 10)


def card_number(serial: int) -> str:
    """The 16-digit, Luhn-valid card number of an account serial (< 10**9)."""
    body = f"{ISSUER_PREFIX}{serial:09d}"
    return body + luhn_check_digit(body)


def written_card(pan: str, style: int) -> str:
    """A card number as a department writes it: plain, or in groups of four by space or dash."""
    if style == 1:
        return " ".join(pan[i : i + 4] for i in range(0, len(pan), 4))
    if style == 2:
        return "-".join(pan[i : i + 4] for i in range(0, len(pan), 4))
    return pan


def _ids(rng: np.random.Generator, prefix: str, n: int, width: int, offset: int) -> list[str]:
    # Source keys are permuted so no source's key order reveals the person order.
    perm = rng.permutation(n) + offset
    return [f"{prefix}{x:0{width}d}" for x in perm.tolist()]


_POSTCODE_LETTERS = np.array(list("ABCDEFGHJKLMNPRSTUWXY"), dtype=object)
_DIGITS = np.array(list("0123456789"), dtype=object)


class Addresses:
    """One address version for every person, kept as compact arrays.

    ``book[i]`` is ``(street, city, postcode, street_type)``; assigning copies another
    person's address (households share one).
    """

    def __init__(self, country: list[str], rng: np.random.Generator) -> None:
        n = len(country)
        self.number = rng.integers(1, 240, n)
        self.street = rng.integers(0, len(V.STREET_NAMES), n)
        self.street_type = rng.integers(0, len(V.STREET_TYPES), n)
        pick = rng.random(n)
        self.city: list[str] = []
        patterns = []
        for c, u in zip(country, pick.tolist(), strict=True):
            city, pattern = V.COUNTRIES[c][3][int(u * len(V.COUNTRIES[c][3]))]
            self.city.append(city)
            patterns.append(pattern)
        width = max(len(pt) for pt in patterns)
        digits = _DIGITS[rng.integers(0, 10, (n, width))]
        letters = _POSTCODE_LETTERS[rng.integers(0, len(_POSTCODE_LETTERS), (n, width))]
        self.postcode = [
            "".join(d[j] if ch == "9" else le[j] if ch == "A" else ch for j, ch in enumerate(pt))
            for pt, d, le in zip(patterns, digits.tolist(), letters.tolist(), strict=True)
        ]

    def __len__(self) -> int:
        return len(self.city)

    def __getitem__(self, i: int) -> tuple[str, str, str, str]:
        return (
            f"{self.number[i]} {V.STREET_NAMES[self.street[i]]}",
            self.city[i],
            self.postcode[i],
            V.STREET_TYPES[self.street_type[i]],
        )

    def __iter__(self) -> Iterator[tuple[str, str, str, str]]:
        return (self[i] for i in range(len(self)))

    def copy_from(self, dst: int, src: int) -> None:
        """Give person ``dst`` the address of person ``src``."""
        self.number[dst] = self.number[src]
        self.street[dst] = self.street[src]
        self.street_type[dst] = self.street_type[src]
        self.city[dst] = self.city[src]
        self.postcode[dst] = self.postcode[src]


def _choice_cum(cum: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Vectorised categorical draw: row-wise cumulative weights ``cum`` and uniforms ``u``."""
    return (u[:, None] > cum).sum(axis=1).clip(0, cum.shape[1] - 1)


def month_starts(params: SynthParams) -> np.ndarray:
    """First day of every month of the history plus the day after the last month."""
    first = np.datetime64(params.start_month, "M")
    return (first + np.arange(params.n_months + 1)).astype("datetime64[D]")


def build_world(params: SynthParams) -> World:
    """Draw the whole hidden world from ``params.seed``.

    Args:
        params: generator parameters.

    Returns:
        The world; it does not depend on which months are later generated.
    """
    rng = np_rng(params.seed, "world")
    n, n_m = params.n_customers, params.n_months
    months = params.months()
    starts = month_starts(params)

    shares = np.array([a["share"] for a in V.ARCHETYPES.values()])
    archetype = rng.choice(len(shares), size=n, p=shares / shares.sum())
    arch = list(V.ARCHETYPES.values())
    gender = rng.choice(3, size=n, p=[0.49, 0.49, 0.02])
    first = []
    for g in gender.tolist():
        pool = (
            V.FIRST_NAMES_F
            if g == 0
            else V.FIRST_NAMES_M
            if g == 1
            else (V.FIRST_NAMES_F + V.FIRST_NAMES_M)
        )
        first.append(pool[int(rng.integers(0, len(pool)))])
    last = [V.LAST_NAMES[i] for i in rng.integers(0, len(V.LAST_NAMES), size=n).tolist()]
    age_mu = np.array([a["age"][0] for a in arch])[archetype]
    age_sd = np.array([a["age"][1] for a in arch])[archetype]
    age = np.clip(rng.normal(age_mu, age_sd), 18.0, 91.0)
    # Ages are counted at the start of the history, so everyone is 18 to 91 then.
    birth = starts[0] - (age * 365.25).astype("int64").astype("timedelta64[D]")
    birth = np.minimum(birth, starts[0] - np.timedelta64(18 * 366, "D"))
    marital = rng.choice(len(V.MARITAL), size=n, p=[0.4, 0.38, 0.1, 0.04, 0.08])
    education = rng.choice(len(V.EDUCATION), size=n, p=[0.25, 0.2, 0.33, 0.18, 0.04])
    occupation = rng.integers(0, len(V.OCCUPATIONS), size=n)
    occupation = np.where(age > 67, V.OCCUPATIONS.index("retired"), occupation)
    occupation = np.where(age < 23, V.OCCUPATIONS.index("student"), occupation)
    inc_mu = np.array([a["income"] for a in arch])[archetype]
    income = np.clip(np.round(rng.normal(inc_mu, 0.9)), 0, len(V.INCOME_BRACKETS) - 1).astype(int)
    codes = list(V.HOME_COUNTRY_WEIGHTS)
    cw = np.array(list(V.HOME_COUNTRY_WEIGHTS.values()))
    country = [codes[i] for i in rng.choice(len(codes), size=n, p=cw / cw.sum()).tolist()]
    currency = [V.COUNTRIES[c][0] for c in country]

    addresses = [Addresses(country, rng) for _ in range(MAX_MOVES + 1)]

    phone = []
    for c in country:
        size = 9 if c in ("GB", "IE") else 8  # mobile numbers: 10 digits in GB/IE, 9 elsewhere
        digits = "".join(str(d) for d in rng.integers(0, 10, size=size).tolist())
        lead = "7" if c in ("GB", "IE") else "6" if c in ("FR", "ES", "NL") else "15"
        phone.append(lead + digits)

    # Households: some persons share an address, often a surname, and the household phone.
    household = np.full(n, -1)
    n_pairs = round(params.shared_household_rate * n / 2)
    order = rng.permutation(n)
    for h in range(n_pairs):
        a, b = int(order[2 * h]), int(order[2 * h + 1])
        household[a] = household[b] = h
        country[b], currency[b] = country[a], currency[a]
        for v in range(MAX_MOVES + 1):
            addresses[v].copy_from(b, a)
        phone[b] = phone[a]
        if rng.random() < 0.7:
            last[b] = last[a]

    email = []
    for i in range(n):
        dom = V.EMAIL_DOMAINS[int(rng.integers(0, len(V.EMAIL_DOMAINS)))]
        style = int(rng.integers(0, 3))
        f, s = first[i].lower(), last[i].lower().replace(" ", "").replace("'", "")
        local = f"{f}.{s}" if style == 0 else f"{f[0]}{s}" if style == 1 else f"{f}{s[:3]}"
        email.append(f"{local}{int(rng.integers(1, 999))}@{dom}")

    # Joining and churn.
    existing = rng.random(n) < params.existing_customer_share
    days_before = rng.integers(30, 3000, size=n).astype("timedelta64[D]")
    new_m = rng.integers(0, n_m, size=n)
    month_len = (starts[new_m + 1] - starts[new_m]).astype(int)
    new_day = (rng.random(n) * month_len).astype(int).astype("timedelta64[D]")
    join_date = np.where(existing, starts[0] - days_before, starts[new_m] + new_day)
    join_m = np.where(existing, 0, new_m)

    churn_mult = np.array([a["churn_mult"] for a in arch])[archetype]
    hazard = rng.random((n, n_m)) < (params.churn_rate * churn_mult)[:, None]
    month_idx = np.arange(n_m)[None, :]
    # A churn needs at least two active months first.
    hazard &= month_idx >= (join_m[:, None] + 2)
    churn_m = np.where(hazard.any(axis=1), hazard.argmax(axis=1), n_m)
    decline_len = rng.integers(2, 5, size=n)

    trajectory = rng.choice(3, size=n, p=[0.7, 0.15, 0.15])
    trajectory = np.where(churn_m < n_m, 3, trajectory)
    base = rng.uniform(0.55, 1.0, size=n)
    since_join = month_idx - join_m[:, None]
    eng = np.clip(base[:, None] + rng.normal(0, 0.05, (n, n_m)), 0.05, 1.0)
    growing = trajectory == 1
    eng[growing] *= np.clip(0.4 + 0.15 * since_join[growing], 0.4, 1.0)
    dip = trajectory == 2
    dip_start = rng.integers(2, max(3, n_m - 3), size=n)
    in_dip = dip[:, None] & (month_idx >= dip_start[:, None]) & (month_idx < dip_start[:, None] + 3)
    eng[in_dip] *= 0.35
    to_churn = churn_m[:, None] - month_idx  # months left before churn
    declining = (to_churn > 0) & (to_churn <= decline_len[:, None]) & (churn_m[:, None] < n_m)
    factor = np.clip(to_churn / (decline_len[:, None] + 1.0), 0.1, 1.0)
    eng = np.where(declining, eng * factor, eng)
    state = np.full((n, n_m), ACTIVE, dtype=np.int8)
    state[declining] = DECLINING
    state[month_idx < join_m[:, None]] = NOT_JOINED
    state[month_idx >= churn_m[:, None]] = CHURNED
    eng = np.where((state == NOT_JOINED) | (state == CHURNED), 0.0, eng)
    alive = (state == ACTIVE) | (state == DECLINING)

    # Monthly events: plan changes, device changes, moves (only while alive, after joining).
    plan_p = np.array([a["plans"] for a in arch])[archetype]
    plan0 = _choice_cum(np.cumsum(plan_p, axis=1), rng.random(n))
    after_join = alive & (month_idx > join_m[:, None])
    plan_ev = (rng.random((n, n_m)) < params.plan_change_rate) & after_join
    step = np.where(rng.random((n, n_m)) < 0.65, 1, -1) * plan_ev
    plan = np.empty((n, n_m), dtype=np.int8)
    cur = plan0.copy()
    for m in range(n_m):
        cur = np.clip(cur + step[:, m], 0, len(V.PLANS) - 1)
        plan[:, m] = cur
    dev_ev = (rng.random((n, n_m)) < params.device_change_rate) & after_join
    device_ver = np.cumsum(dev_ev, axis=1, dtype=np.int16)
    os0 = rng.choice(3, size=n, p=[0.45, 0.45, 0.10])
    os_flip = dev_ev & (rng.random((n, n_m)) < 0.3)
    device_os = ((os0[:, None] + np.cumsum(os_flip, axis=1)) % 3).astype(np.int8)
    move_ev = (rng.random((n, n_m)) < params.move_rate) & after_join
    addr_ver = np.minimum(np.cumsum(move_ev, axis=1), MAX_MOVES).astype(np.int8)
    for h in range(n_pairs):  # a household moves together
        a, b = int(order[2 * h]), int(order[2 * h + 1])
        addr_ver[b] = addr_ver[a]

    kr = np_rng(params.seed, "keys")
    crm_id = _ids(kr, "CRM-", n, 7, 1_000_000)
    fin_id = _ids(kr, "FIN", n, 8, 10_000_000)
    demo_id = _ids(kr, "D", n, 7, 2_000_000)
    app_user_id = _ids(kr, "u_", n, 7, 3_000_000)
    contact_id = _ids(kr, "MK", n, 7, 4_000_000)
    wallet_id = _ids(kr, "W", n, 9, 500_000_000)
    # Card numbers of the real shape: 16 digits, an issuer prefix, Luhn-valid, all distinct.
    card_pool = kr.permutation(2 * n) + 40_000_000  # the same draw as ever: the world stays
    physical = kr.random(n) < 0.55
    pans = [card_number(int(x)) for x in card_pool.tolist()]
    card_ids: list[tuple[str, ...]] = [
        (pans[2 * i], pans[2 * i + 1]) if physical[i] else (pans[2 * i],) for i in range(n)
    ]
    dup_people = np.flatnonzero(kr.random(n) < params.duplicate_identity_rate)
    dup_crm = {}
    for j, p in enumerate(dup_people.tolist()):
        last_alive = int(min(churn_m[p], n_m)) - 1
        lo = int(join_m[p])
        if last_alive < lo:
            continue
        dup_crm[p] = (f"CRM-{9_000_000 + j:07d}", int(kr.integers(lo, last_alive + 1)))
    device_owner, device_tokens, dup_device = _build_devices(
        params, device_ver, order, n_pairs, dup_crm
    )
    in_demographics = kr.random(n) < 0.85
    in_app = kr.random(n) < np.array([0.95, 0.8, 0.55, 0.95, 0.9])[archetype]
    credit = np.clip(rng.normal(560 + 50 * income, 70), 300, 850).astype(int)
    has_debt = rng.random(n) < params.debt_rate

    merchants = _build_merchants(params, starts)
    fx_days, fx = _build_fx(params, starts)
    return World(
        params=params,
        months=months,
        month_starts=starts,
        n=n,
        person_id=[f"P{i:07d}" for i in range(n)],
        archetype=archetype,
        trajectory=trajectory,
        gender=gender,
        first=first,
        last=last,
        birth=birth,
        marital=marital,
        education=education,
        occupation=occupation,
        income=income,
        country=country,
        currency=currency,
        addresses=addresses,
        email=email,
        phone=phone,
        national_id=national_ids(params.seed, country),
        household=household,
        join_date=join_date,
        join_m=join_m,
        churn_m=churn_m,
        engagement=eng,
        state=state,
        plan=plan,
        device_ver=device_ver,
        device_os=device_os,
        addr_ver=addr_ver,
        crm_id=crm_id,
        fin_id=fin_id,
        demo_id=demo_id,
        app_user_id=app_user_id,
        contact_id=contact_id,
        wallet_id=wallet_id,
        card_ids=card_ids,
        dup_crm=dup_crm,
        device_owner=device_owner,
        device_tokens=device_tokens,
        dup_device=dup_device,
        in_demographics=in_demographics,
        in_app=in_app,
        credit_score=credit,
        has_debt=has_debt,
        merchants=merchants,
        fx_days=fx_days,
        fx=fx,
    )


def device_token(rng: np.random.Generator) -> str:
    """An opaque device id: random, so it says nothing about who holds the device."""
    return f"dev_{int(rng.integers(0, 2**62)):016x}"


def _build_devices(
    params: SynthParams,
    device_ver: np.ndarray,
    order: np.ndarray,
    n_pairs: int,
    dup_crm: dict[int, tuple[str, int]],
) -> tuple[np.ndarray, list[list[str]], dict[int, str]]:
    # Its own random stream, so the rest of the world stays what it was.
    rng = np_rng(params.seed, "devices")
    n = device_ver.shape[0]
    owner = np.arange(n)
    for h in range(n_pairs):
        if rng.random() < params.household_device_share_rate:
            owner[int(order[2 * h + 1])] = int(order[2 * h])
    tokens = [[device_token(rng) for _ in range(int(device_ver[i].max()) + 1)] for i in range(n)]
    dup_device = {
        p: device_token(rng)
        for p in sorted(dup_crm)
        if rng.random() < params.signup_device_change_rate
    }
    return owner, tokens, dup_device


def _build_merchants(params: SynthParams, starts: np.ndarray) -> Merchants:
    rng = np_rng(params.seed, "merchants")
    homes = list(V.COUNTRIES)
    foreign = list(V.FOREIGN_COUNTRIES)
    combos = [(m, c) for m in range(len(V.MCCS)) for c in homes + foreign]
    # Every (category, country) pair gets one merchant, the rest are spread at random.
    n_total = max(params.n_merchants, len(combos))
    mcc = np.empty(n_total, dtype=int)
    ctry: list[str] = []
    for i in range(n_total):
        if i < len(combos):
            m, c = combos[i]
        else:
            m = int(rng.integers(0, len(V.MCCS)))
            c = (
                homes[int(rng.integers(0, len(homes)))]
                if rng.random() < 0.8
                else foreign[int(rng.integers(0, len(foreign)))]
            )
        mcc[i] = m
        ctry.append(c)
    city = [
        V.COUNTRIES[c][3][int(rng.integers(0, len(V.COUNTRIES[c][3])))][0]
        if c in V.COUNTRIES
        else V.FOREIGN_CITIES[c]
        for c in ctry
    ]
    online = np.array([V.MCCS[m][2] for m in mcc.tolist()]) & (rng.random(n_total) < 0.7)
    opened_m = np.where(
        np.arange(n_total) < len(combos),
        -1,
        np.where(rng.random(n_total) < 0.8, -1, rng.integers(0, params.n_months, n_total)),
    )
    before = starts[0] - rng.integers(30, 4000, n_total).astype("timedelta64[D]")
    day = rng.integers(0, 28, n_total).astype("timedelta64[D]")
    opened = np.where(opened_m < 0, before, starts[np.maximum(opened_m, 0)] + day)
    order = rng.permutation(n_total) + 10_000
    ids = [f"M{x:06d}" for x in order.tolist()]
    names = [
        f"{V.MERCHANT_WORDS[int(rng.integers(0, len(V.MERCHANT_WORDS)))]} "
        f"{V.MERCHANT_SUFFIX[V.MCCS[m][1]]}"
        for m in mcc.tolist()
    ]
    compromised = []
    for m in range(params.n_months):
        hit = np.flatnonzero(rng.random(n_total) < params.compromised_merchant_rate / 4)
        for i in hit.tolist():
            if V.MCCS[int(mcc[i])][1] == "atm" or opened_m[i] > m:
                continue
            first = starts[m] + np.timedelta64(int(rng.integers(0, 20)), "D")
            compromised.append((i, first, first + np.timedelta64(int(rng.integers(3, 9)), "D")))
    return Merchants(ids, names, mcc, ctry, city, online, opened, opened_m, compromised)


def _build_fx(params: SynthParams, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rng = np_rng(params.seed, "fx")
    days = np.arange(starts[0], starts[-1], dtype="datetime64[D]")
    vol = np.array([V.FX_DAILY_VOL.get(c, 0.004) for c in V.CURRENCIES])
    steps = rng.normal(0.0, 1.0, (len(days), len(V.CURRENCIES))) * vol
    steps[0] = 0.0
    rates = np.array([V.FX_START[c] for c in V.CURRENCIES]) * np.exp(np.cumsum(steps, axis=0))
    return days, rates
