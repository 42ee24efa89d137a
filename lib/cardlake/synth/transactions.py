"""Card and wallet transactions for one month, vectorised with numpy, with injected fraud."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cardlake.synth import vocab as V
from cardlake.synth.rng import np_rng
from cardlake.synth.sources import MAX_VALID_AMOUNT
from cardlake.synth.world import World, device_token

CH = {name: i for i, name in enumerate(V.CHANNELS)}
N_CARD_CHANNELS = len(V.CARD_CHANNELS)  # channels 0..2 go to the card CSV, the rest to wallet
PATTERNS = (
    "none",
    "card_testing",
    "card_testing_cashout",
    "account_takeover",
    "compromised_merchant",
)
WALLET_TYPICAL_USD = {"P2P": 50.0, "top-up": 150.0, "FX": 300.0, "crypto": 250.0, "stock": 350.0}
STATE_P = np.array([0.93, 0.02, 0.03, 0.01, 0.01])
WEEKDAY_WEIGHT = np.array([0.9, 0.95, 1.0, 1.05, 1.25, 1.3, 0.8])  # Monday first
COUNTRY_INDEX = {c: i for i, c in enumerate(V.ALL_COUNTRIES)}
CCY_INDEX = {c: i for i, c in enumerate(V.CURRENCIES)}
SECONDS_PER_DAY = 86_400


@dataclass
class TxBatch:
    """One month of transactions, sorted by time; all arrays have the same length."""

    month: str
    tx_id: np.ndarray  # object (str)
    person: np.ndarray
    channel: np.ndarray
    ts: np.ndarray  # int64 seconds since the epoch, UTC
    merchant: np.ndarray  # -1 when none
    mcc: np.ndarray  # -1 when none
    m_country: np.ndarray  # index into vocab.ALL_COUNTRIES, -1 when none
    currency: np.ndarray  # index into vocab.CURRENCIES
    amount: np.ndarray  # in the transaction currency, 2 decimals
    amount_usd: np.ndarray
    direction: np.ndarray  # 0 debit, 1 credit
    state: np.ndarray  # index into vocab.STATES
    device: np.ndarray  # object (str, "" when none)
    ip_country: np.ndarray  # index, -1 when none
    card: np.ndarray  # object (str, "" for wallet transactions)
    counterparty: np.ndarray  # person index for P2P, -1 otherwise
    cross_border: np.ndarray  # bool
    fraud_p: np.ndarray
    pattern: np.ndarray  # index into PATTERNS
    is_fraud: np.ndarray
    reported_at: np.ndarray  # int64 seconds, -1 when never reported


def _arch_table(key: str) -> np.ndarray:
    return np.array([a[key] for a in V.ARCHETYPES.values()])


def _choice_by_group(cum: np.ndarray, group: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Categorical draw with row ``cum[group[i]]`` per item, in O(len(u)) memory."""
    out = np.empty(len(u), dtype=np.int64)
    for g in range(cum.shape[0]):
        sel = group == g
        out[sel] = np.searchsorted(cum[g], u[sel], side="right")
    return out.clip(0, cum.shape[1] - 1)


def _mcc_cum(online: bool) -> np.ndarray:
    rows = []
    for a in V.ARCHETYPES.values():
        w = np.ones(len(V.MCCS))
        for cat, boost in a["mcc_boost"].items():
            w[V.MCC_INDEX[cat]] *= boost
        w[V.MCC_INDEX["atm"]] = 0.0
        if online:
            w *= np.array([m[2] for m in V.MCCS], dtype=float)
        rows.append(np.cumsum(w / w.sum()))
    return np.array(rows)


def _merchant_pools(world: World, m: int) -> dict[tuple[int, int], np.ndarray]:
    mer = world.merchants
    open_now = np.flatnonzero(mer.opened_m <= m)
    pools: dict[tuple[int, int], list[int]] = {}
    for i in open_now.tolist():
        pools.setdefault((int(mer.mcc[i]), COUNTRY_INDEX[mer.country[i]]), []).append(i)
    return {k: np.array(v) for k, v in pools.items()}


def simulate_month(world: World, m: int) -> TxBatch:
    """All transactions of month index ``m``; depends only on the seed and the world.

    Args:
        world: the hidden world.
        m: month index in the history.

    Returns:
        The month's transactions sorted by timestamp with ids, fraud truth and reports.
    """
    p = world.params
    month = world.months[m]
    rng = np_rng(p.seed, "tx", month)
    start = world.month_starts[m]
    ndays = int((world.month_starts[m + 1] - start).astype(int))
    start_s = int(start.astype("datetime64[s]").astype(np.int64))
    n = world.n

    joined_now = (world.join_m == m) & (world.join_date >= start)
    join_day = np.where(joined_now, (world.join_date - start).astype(int), 0)
    frac = (ndays - join_day) / ndays
    tx_scale = _arch_table("tx_scale")[world.archetype]
    lam = p.tx_per_customer_month * tx_scale * world.engagement[:, m] * frac
    counts = rng.poisson(lam)
    person = np.repeat(np.arange(n), counts)
    k = len(person)
    a = world.archetype[person]

    ch_w = _arch_table("channels")
    channel = _choice_by_group(
        np.cumsum(ch_w / ch_w.sum(axis=1, keepdims=True), axis=1), a, rng.random(k)
    )
    day = _draw_days(rng, start, ndays, join_day[person])
    night = rng.random(k) < _arch_table("night_share")[a]
    peak = _arch_table("hour_peak")[a]
    hour = np.where(
        night, rng.integers(0, 6, k), np.clip(np.round(rng.normal(peak, 3.5)), 6, 23)
    ).astype(np.int64)
    ts = start_s + day * SECONDS_PER_DAY + hour * 3600 + rng.integers(0, 3600, k)

    home_c = np.array([COUNTRY_INDEX[c] for c in world.country])[person]
    home_ccy = np.array([CCY_INDEX[c] for c in world.currency])[person]
    is_card = channel < N_CARD_CHANNELS
    # Merchant category and country for card transactions.
    mcc = np.full(k, -1)
    pos_mcc = _choice_by_group(_mcc_cum(False), a, rng.random(k))
    onl_mcc = _choice_by_group(_mcc_cum(True), a, rng.random(k))
    mcc = np.where(channel == CH["POS"], pos_mcc, mcc)
    mcc = np.where(channel == CH["online"], onl_mcc, mcc)
    mcc = np.where(channel == CH["ATM"], V.MCC_INDEX["atm"], mcc)
    cross = is_card & (rng.random(k) < _arch_table("cross_border")[a])
    dest = rng.integers(0, len(V.ALL_COUNTRIES), k)
    dest = np.where(dest == home_c, (dest + 1) % len(V.ALL_COUNTRIES), dest)
    m_country = np.where(is_card, np.where(cross, dest, home_c), -1)
    merchant = _pick_merchants(world, m, rng, mcc, m_country)

    typical = np.array([x[3] for x in V.MCCS])
    wallet_typ = np.array([0, 0, 0] + [WALLET_TYPICAL_USD[c] for c in V.CHANNELS[3:]])
    base_amt = np.where(is_card, typical[np.maximum(mcc, 0)], wallet_typ[channel])
    sigma = _arch_table("amount_sigma")[a]
    amount_usd = (
        base_amt * _arch_table("amount_scale")[a] * np.exp(rng.normal(-(sigma**2) / 2, sigma))
    )
    amount_usd = np.clip(amount_usd, 0.5, 50_000.0)

    ccy_of_country = np.array([CCY_INDEX[_country_ccy(c)] for c in V.ALL_COUNTRIES])
    currency = np.where(is_card, ccy_of_country[np.maximum(m_country, 0)], home_ccy)
    fx_ccy = rng.integers(0, len(V.CURRENCIES), k)
    currency = np.where(channel == CH["FX"], fx_ccy, currency)
    direction = np.zeros(k, dtype=int)
    direction = np.where(channel == CH["top-up"], 1, direction)
    direction = np.where((channel == CH["P2P"]) & (rng.random(k) < 0.45), 1, direction)
    sells = (channel == CH["crypto"]) | (channel == CH["stock"])
    direction = np.where(sells & (rng.random(k) < 0.25), 1, direction)
    state = np.searchsorted(np.cumsum(STATE_P), rng.random(k), side="right").clip(0, 4)
    counterparty = np.where(channel == CH["P2P"], rng.integers(0, n, k), -1)
    travelling = cross & (channel != CH["online"])
    uses_device = (channel == CH["online"]) | ~is_card
    ip_country = np.where(uses_device, np.where(travelling, m_country, home_c), -1)
    devices = np.array([world.device_id(i, m) for i in range(n)], dtype=object)
    device = np.where(uses_device, devices[person], "")
    cards0 = np.array([c[0] for c in world.card_ids], dtype=object)
    cards1 = np.array([c[-1] for c in world.card_ids], dtype=object)
    physical = (channel == CH["ATM"]) | ((channel == CH["POS"]) & (rng.random(k) < 0.6))
    card = np.where(is_card, np.where(physical, cards1[person], cards0[person]), "")
    cross_border = np.where(is_card, m_country != home_c, channel == CH["FX"])

    rel = np.log(amount_usd / np.where(base_amt > 0, base_amt, 1.0))
    logit = (
        p.base_fraud_logit
        + 1.5 * night
        + 1.2 * cross_border
        + 0.6 * ((channel == CH["online"]) | (channel == CH["crypto"]))
        + 0.5 * np.clip(rel, -2, 4)
        + 0.4 * (a == V.ARCHETYPE_NAMES.index("high_volatility"))
    )
    fraud_p = 1.0 / (1.0 + np.exp(-logit))
    pattern = np.zeros(k, dtype=int)
    for mi, first, last in world.merchants.compromised:
        lo = int(first.astype("datetime64[s]").astype(np.int64))
        hi = int((last + 1).astype("datetime64[s]").astype(np.int64))
        hit = (merchant == mi) & (ts >= lo) & (ts < hi)
        if hit.any():
            fraud_p[hit] = np.maximum(fraud_p[hit], rng.uniform(0.25, 0.45, int(hit.sum())))
            pattern[hit] = PATTERNS.index("compromised_merchant")

    cols = {
        "person": person,
        "channel": channel,
        "ts": ts,
        "merchant": merchant,
        "mcc": mcc,
        "m_country": m_country,
        "currency": currency,
        "amount_usd": amount_usd,
        "direction": direction,
        "state": state,
        "device": device,
        "ip_country": ip_country,
        "card": card,
        "counterparty": counterparty,
        "cross_border": cross_border,
        "fraud_p": fraud_p,
        "pattern": pattern,
    }
    extra = _inject_patterns(
        world, m, np_rng(p.seed, "fraud", month), start_s, ndays, join_day, devices, cards0
    )
    for key in cols:
        cols[key] = np.concatenate([cols[key], extra[key]])
    return _finish(world, m, cols)


def _country_ccy(code: str) -> str:
    return V.COUNTRIES[code][0] if code in V.COUNTRIES else V.FOREIGN_COUNTRIES[code]


def _draw_days(
    rng: np.random.Generator, start: np.datetime64, ndays: int, first_day: np.ndarray
) -> np.ndarray:
    # Weekly seasonality, restricted to days on or after the customer's first active day.
    dates = np.arange(start, start + ndays).astype("datetime64[D]").astype(np.int64)
    w = WEEKDAY_WEIGHT[(dates + 3) % 7]
    cdf = np.concatenate([[0.0], np.cumsum(w / w.sum())])
    lo = cdf[first_day]
    u = lo + (1.0 - lo) * rng.random(len(first_day))
    return np.clip(np.searchsorted(cdf, u, side="right") - 1, first_day, ndays - 1)


def _pick_merchants(
    world: World, m: int, rng: np.random.Generator, mcc: np.ndarray, country: np.ndarray
) -> np.ndarray:
    pools = _merchant_pools(world, m)
    merchant = np.full(len(mcc), -1)
    has = mcc >= 0
    key = np.where(has, mcc * 1000 + country, -1)
    u = rng.random(len(mcc))
    for code in np.unique(key[has]).tolist():
        idx = np.flatnonzero(key == code)
        pool = pools.get((code // 1000, code % 1000))
        if pool is None:  # should not happen: every pair has a merchant opened before start
            pool = np.flatnonzero(world.merchants.mcc == code // 1000)
        merchant[idx] = pool[(u[idx] * len(pool)).astype(int)]
    return merchant


def _empty_cols() -> dict[str, list]:
    return {
        k: []
        for k in (
            "person",
            "channel",
            "ts",
            "merchant",
            "mcc",
            "m_country",
            "currency",
            "amount_usd",
            "direction",
            "state",
            "device",
            "ip_country",
            "card",
            "counterparty",
            "cross_border",
            "fraud_p",
            "pattern",
        )
    }


def _inject_patterns(
    world: World,
    m: int,
    rng: np.random.Generator,
    start_s: int,
    ndays: int,
    join_day: np.ndarray,
    devices: np.ndarray,
    cards0: np.ndarray,
) -> dict[str, np.ndarray]:
    """Card-testing bursts with a cash-out, and account takeovers, as extra transactions."""
    p = world.params
    alive = world.engagement[:, m] > 0
    out = _empty_cols()
    home_c = [COUNTRY_INDEX[c] for c in world.country]
    home_ccy = [CCY_INDEX[c] for c in world.currency]
    mer = world.merchants
    testers = np.flatnonzero(
        np.isin(mer.mcc, [V.MCC_INDEX["digital_goods"], V.MCC_INDEX["misc_retail"]])
        & mer.online
        & (mer.opened_m <= m)
    )
    if len(testers) == 0:
        testers = np.flatnonzero(mer.mcc == V.MCC_INDEX["digital_goods"])
    shops = np.flatnonzero((mer.mcc == V.MCC_INDEX["electronics"]) & (mer.opened_m <= m))

    def add(
        person: int,
        ch: int,
        ts: int,
        merchant: int,
        usd: float,
        state: int,
        device: str,
        ip: int,
        card: str,
        cp: int,
        prob: float,
        pattern: str,
    ) -> None:
        mc = int(mer.mcc[merchant]) if merchant >= 0 else -1
        mco = COUNTRY_INDEX[mer.country[merchant]] if merchant >= 0 else -1
        out["person"].append(person)
        out["channel"].append(ch)
        out["ts"].append(ts)
        out["merchant"].append(merchant)
        out["mcc"].append(mc)
        out["m_country"].append(mco)
        ccy = CCY_INDEX[_country_ccy(mer.country[merchant])] if merchant >= 0 else home_ccy[person]
        out["currency"].append(ccy)
        out["amount_usd"].append(usd)
        out["direction"].append(0)
        out["state"].append(state)
        out["device"].append(device)
        out["ip_country"].append(ip)
        out["card"].append(card)
        out["counterparty"].append(cp)
        out["cross_border"].append(mco >= 0 and mco != home_c[person])
        out["fraud_p"].append(prob)
        out["pattern"].append(PATTERNS.index(pattern))

    for person in np.flatnonzero(alive & (rng.random(world.n) < p.card_testing_rate)).tolist():
        day = int(rng.integers(join_day[person], ndays))
        t = start_s + day * SECONDS_PER_DAY + int(rng.integers(0, SECONDS_PER_DAY - 7200))
        shop = int(testers[int(rng.integers(0, len(testers)))])
        card = str(cards0[person])
        for _ in range(int(rng.integers(6, 26))):
            t += int(rng.integers(5, 90))
            st = int(rng.choice(5, p=[0.3, 0.1, 0.6, 0.0, 0.0]))
            add(
                person,
                CH["online"],
                t,
                shop,
                float(rng.uniform(0.5, 5.0)),
                st,
                "",
                int(rng.integers(0, len(V.ALL_COUNTRIES))),
                card,
                -1,
                float(rng.uniform(0.85, 0.97)),
                "card_testing",
            )
        for _ in range(int(rng.integers(1, 3))):
            t += int(rng.integers(600, 6 * 3600))
            t = min(t, start_s + ndays * SECONDS_PER_DAY - 1)
            shop2 = int(shops[int(rng.integers(0, len(shops)))]) if len(shops) else shop
            add(
                person,
                CH["online"],
                t,
                shop2,
                float(rng.uniform(300, 1500)),
                0,
                "",
                int(rng.integers(0, len(V.ALL_COUNTRIES))),
                card,
                -1,
                float(rng.uniform(0.7, 0.9)),
                "card_testing_cashout",
            )

    for person in np.flatnonzero(alive & (rng.random(world.n) < p.account_takeover_rate)).tolist():
        day = int(rng.integers(join_day[person], ndays))
        t = start_s + day * SECONDS_PER_DAY + int(rng.integers(0, 5 * 3600))
        device = device_token(rng)  # the fraudster's own device
        ip = int(rng.integers(len(V.COUNTRIES), len(V.ALL_COUNTRIES)))  # a foreign country
        for _ in range(int(rng.integers(2, 7))):
            t += int(rng.integers(60, 1800))
            ch = CH["P2P"] if rng.random() < 0.6 else CH["crypto"]
            cp = int(rng.integers(0, world.n)) if ch == CH["P2P"] else -1
            add(
                person,
                ch,
                t,
                -1,
                float(rng.uniform(200, 2500)),
                0,
                device,
                ip,
                "",
                cp,
                float(rng.uniform(0.8, 0.95)),
                "account_takeover",
            )
    del devices
    return {
        key: np.array(
            vals,
            dtype=object
            if key in ("device", "card")
            else float
            if key in ("amount_usd", "fraud_p")
            else bool
            if key == "cross_border"
            else np.int64,
        )
        for key, vals in out.items()
    }


def _finish(world: World, m: int, cols: dict[str, np.ndarray]) -> TxBatch:
    p = world.params
    month = world.months[m]
    k = len(cols["ts"])
    order = np.lexsort((np.arange(k), cols["ts"]))
    c = {key: v[order] for key, v in cols.items()}
    rng = np_rng(p.seed, "labels", month)
    is_fraud = rng.random(k) < c["fraud_p"]
    reported = is_fraud & (rng.random(k) < p.chargeback_report_rate)
    delay = 1 + np.minimum(rng.gamma(2.0, 5.0, k), p.max_report_delay_days - 1)
    reported_at = np.where(reported, c["ts"] + (delay * SECONDS_PER_DAY).astype(np.int64), -1)
    day_index = (c["ts"] // SECONDS_PER_DAY) - int(
        world.fx_days[0].astype("datetime64[D]").astype(np.int64)
    )
    rate = world.fx[day_index, c["currency"]]
    # Keep every genuine amount inside the contract's limit in its own currency (JPY, TRY).
    c["amount_usd"] = np.minimum(c["amount_usd"], 0.9 * MAX_VALID_AMOUNT / rate)
    amount = np.round(c["amount_usd"] * rate, 2)
    amount = np.maximum(amount, 0.01)
    prefix = "TX" + month.replace("-", "")
    tx_id = np.array([f"{prefix}{i:08d}" for i in range(k)], dtype=object)
    return TxBatch(
        month=month,
        tx_id=tx_id,
        person=c["person"],
        channel=c["channel"],
        ts=c["ts"],
        merchant=c["merchant"],
        mcc=c["mcc"],
        m_country=c["m_country"],
        currency=c["currency"],
        amount=amount,
        amount_usd=np.round(c["amount_usd"], 2),
        direction=c["direction"],
        state=c["state"],
        device=c["device"],
        ip_country=c["ip_country"],
        card=c["card"],
        counterparty=c["counterparty"],
        cross_border=c["cross_border"].astype(bool),
        fraud_p=c["fraud_p"],
        pattern=c["pattern"],
        is_fraud=is_fraud,
        reported_at=reported_at,
    )
