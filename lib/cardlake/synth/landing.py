"""Writers for each landing source, one month's drop at a time."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import numpy as np

from cardlake.synth import vocab as V
from cardlake.synth.defects import SYNTACTIC, break_text, corrupt_fields, pick_kind
from cardlake.synth.national_id import delivered_national_id
from cardlake.synth.noise import Identity, noisy_identity
from cardlake.synth.output import FileBuilder, TruthSink
from cardlake.synth.rng import np_rng, py_rng
from cardlake.synth.transactions import (
    N_CARD_CHANNELS,
    PATTERNS,
    SECONDS_PER_DAY,
    TxBatch,
)
from cardlake.synth.world import ENGAGEMENT_STATES, World, written_card

CRM_COLUMNS = (
    "crm_id",
    "first_name",
    "last_name",
    "date_of_birth",
    "email",
    "phone",
    "street",
    "city",
    "postcode",
    "country",
    "plan_type",
    "status",
    "join_date",
    "wallet_id",
    "device_os",
    "device_id",
    "fin_ref",
    "updated_at",
)
USAGE_COLUMNS = (
    "usage_id",
    "app_user_id",
    "email",
    "crm_id",
    "month",
    "product",
    "sessions",
    "minutes",
    "last_seen",
    "device_id",
    "device_os",
    "app_version",
)
MARKETING_COLUMNS = (
    "contact_id",
    "crm_id",
    "email",
    "month",
    "plan_type",
    "plan_changed",
    "device_changed",
    "notifications_sent",
    "notifications_failed",
    "notifications_opened",
    "campaign",
    "opted_in",
    "extracted_on",
)
CARD_TX_COLUMNS = (
    "transaction_id",
    "card_id",
    "timestamp",
    "amount",
    "currency",
    "merchant_id",
    "mcc",
    "merchant_country",
    "channel",
    "direction",
    "state",
    "device_id",
    "ip_country",
)
CHARGEBACK_COLUMNS = (
    "report_id",
    "transaction_id",
    "instrument_id",
    "reported_at",
    "reason_code",
    "amount",
    "currency",
)
MERCHANT_COLUMNS = (
    "merchant_id",
    "name",
    "mcc",
    "category",
    "country",
    "city",
    "online",
    "opened_on",
)
FX_COLUMNS = ("date", "currency", "units_per_usd")
REASON_CODES = ("10.4", "10.5", "4837", "4863", "unauthorised")
APP_VERSIONS = ("5.2.0", "5.3.1", "5.4.0", "6.0.2", "6.1.0")
AGENT_TYPE_ACCURACY = 0.75


@dataclass
class MonthContext:
    """What every writer needs for one delivery month."""

    world: World
    m: int
    landing_root: Path
    truth: TruthSink

    @property
    def month(self) -> str:
        return self.world.months[self.m]

    def builder(self, source: str, file_name: str, **kwargs: Any) -> FileBuilder:
        rel = f"{source}/{self.month}/{file_name}"
        return FileBuilder(source=source, rel_path=rel, **kwargs)

    def finish(self, fb: FileBuilder, rnd: random.Random) -> None:
        p = self.world.params
        fb.finish(
            landing_root=self.landing_root,
            truth=self.truth,
            rnd=rnd,
            duplicate_rate=p.duplicate_record_rate,
            redelivery_rate=p.redelivery_rate,
        )

    def ts_in_month(self, rnd: random.Random, day_from: int = 0) -> str:
        start = self.world.month_starts[self.m]
        ndays = int((self.world.month_starts[self.m + 1] - start).astype(int))
        secs = rnd.randrange(min(day_from, ndays - 1) * SECONDS_PER_DAY, ndays * SECONDS_PER_DAY)
        return str(start.astype("datetime64[s]") + np.timedelta64(secs, "s"))


def _maybe_bad(
    record: dict[str, Any], defect_set: str, rate: float, rnd: random.Random
) -> str | None:
    if rnd.random() >= rate:
        return None
    kind = pick_kind(defect_set, rnd)
    corrupt_fields(record, defect_set, kind, rnd)
    return kind


def _identity(world: World, i: int, m: int, rnd: random.Random) -> Identity:
    return noisy_identity(
        first=world.first[i],
        last=world.last[i],
        email=world.email[i],
        country=world.country[i],
        phone=world.phone[i],
        address=world.addresses[int(world.addr_ver[i, m])][i],
        params=world.params,
        rnd=rnd,
    )


def _changed(arr: np.ndarray, m: int) -> np.ndarray:
    return arr[:, m] != arr[:, m - 1] if m > 0 else np.zeros(arr.shape[0], dtype=bool)


def crm_customers(ctx: MonthContext) -> None:
    """New customers, changed profiles (move, plan, device), closures and duplicate sign-ups."""
    w, m, p = ctx.world, ctx.m, ctx.world.params
    rnd = py_rng(p.seed, "crm_customers", ctx.month)
    fb = ctx.builder(
        "crm_customers",
        f"crm_customers_{ctx.month}.csv",
        header=[",".join(CRM_COLUMNS)],
        columns=CRM_COLUMNS,
    )
    changed = _changed(w.plan, m) | _changed(w.device_ver, m) | _changed(w.addr_ver, m)
    joins = w.join_m == m
    closes = w.churn_m == m
    rows: list[tuple[int, str, bool]] = [
        (int(i), w.crm_id[i], False)
        for i in np.flatnonzero(joins | (changed & (w.state[:, m] != 0)) | closes).tolist()
    ]
    rows += [(i, crm, True) for i, (crm, dm) in sorted(w.dup_crm.items()) if dm == m]
    rows.sort(key=lambda r: r[1])
    for i, crm, dup in rows:
        ident = _identity(w, i, m, rnd)
        if dup and rnd.random() < 0.5:  # a second sign-up is typed more carelessly
            from cardlake.synth.noise import typo

            ident.first = typo(ident.first, rnd)
            ident.noise.append("name_typo")
        mm = min(m, w.params.n_months - 1)
        closing = bool(closes[i]) and not dup
        join_date = (
            w.join_date[i]
            if not dup
            else w.month_starts[m] + np.timedelta64(rnd.randrange(0, 28), "D")
        )
        day_from = int((w.join_date[i] - w.month_starts[m]).astype(int)) if joins[i] else 0
        rec = {
            "crm_id": crm,
            "first_name": ident.first,
            "last_name": ident.last,
            "date_of_birth": "" if rnd.random() < p.missing_field_rate else str(w.birth[i]),
            "email": ident.email,
            "phone": ident.phone,
            "street": ident.street,
            "city": ident.city,
            "postcode": ident.postcode,
            "country": w.country[i],
            "plan_type": V.PLANS[int(w.plan[i, mm])],
            "status": "closed" if closing else "active",
            "join_date": str(join_date),
            "wallet_id": "" if dup else w.wallet_id[i],
            "device_os": V.DEVICE_OS[int(w.device_os[i, mm])],
            "device_id": w.dup_device.get(i, w.device_id(i, mm)) if dup else w.device_id(i, mm),
            "fin_ref": w.fin_id[i] if (not dup and rnd.random() < p.crossref_rate) else "",
            "updated_at": ctx.ts_in_month(rnd, max(day_from, 0)),
        }
        bad = _maybe_bad(rec, "crm_customers", p.bad_record_rate, rnd)
        fb.add(
            rec,
            record_id=crm,
            person_id=w.person_id[i],
            noise=";".join(ident.noise),
            bad_kind=bad,
            rnd=rnd,
        )
    ctx.finish(fb, rnd)


def financial_records(ctx: MonthContext) -> None:
    """Core-banking documents for new customers and those who moved or changed plan."""
    w, m, p = ctx.world, ctx.m, ctx.world.params
    rnd = py_rng(p.seed, "financial_records", ctx.month)
    fb = ctx.builder(
        "financial_records", f"financial_records_{ctx.month}.jsonl", serializer=_json_line
    )
    who = (w.join_m == m) | ((_changed(w.plan, m) | _changed(w.addr_ver, m)) & (w.state[:, m] != 0))
    # The holder's national id (KYC) comes from streams of its own, so ``rnd`` draws what it
    # always drew and every other byte of the file is what it was before national ids.
    nid_rnd = py_rng(p.seed, "national_id_written", ctx.month)
    for i in sorted(np.flatnonzero(who).tolist(), key=lambda j: w.fin_id[j]):
        ident = _identity(w, i, m, rnd)
        rec = _financial_doc(ctx, i, ident, rnd)
        bad = _maybe_bad(rec, "financial_records", p.bad_record_rate, rnd)
        national = delivered_national_id(
            w.national_id[i], missing_rate=p.missing_field_rate, rnd=nid_rnd
        )
        if bad not in SYNTACTIC:  # a line cut in half keeps the cut it always had
            rec["holder"]["national_id"] = national
        fb.add(
            rec,
            record_id=w.fin_id[i],
            person_id=w.person_id[i],
            noise=";".join(ident.noise),
            bad_kind=bad,
            rnd=rnd,
        )
    ctx.finish(fb, rnd)


def _json_line(rec: dict[str, Any]) -> str:
    return json.dumps(rec, separators=(",", ":"), ensure_ascii=False)


def _financial_doc(
    ctx: MonthContext, i: int, ident: Identity, rnd: random.Random
) -> dict[str, Any]:
    w, m, p = ctx.world, ctx.m, ctx.world.params
    fixed = py_rng(p.seed, "financial_person", w.person_id[i])  # stable across deliveries
    style = rnd.randrange(3)
    name = (
        f"{ident.first} {ident.last}".strip()
        if style == 0
        else f"{ident.last.strip().upper()}, {ident.first.strip()}"
        if style == 1
        else f"{ident.last} {ident.first}".strip()
    )
    ccy = w.currency[i]
    opened = str(w.join_date[i])
    income_scale = 500 * (1 + int(w.income[i])) ** 2
    accounts = [
        {
            "account_id": f"AC{w.fin_id[i][3:]}1",
            "type": "wallet",
            "currency": ccy,
            "opened": opened,
            "balance": round(fixed.lognormvariate(0, 1) * income_scale, 2),
        }
    ]
    if fixed.random() < 0.6:
        accounts.append(
            {
                "account_id": f"AC{w.fin_id[i][3:]}2",
                "type": "current",
                "currency": ccy,
                "opened": opened,
                "balance": round(fixed.lognormvariate(0, 1.2) * income_scale, 2),
            }
        )
    if fixed.random() < 0.3:
        accounts.append(
            {
                "account_id": f"AC{w.fin_id[i][3:]}3",
                "type": "savings",
                "currency": ccy,
                "opened": opened,
                "balance": round(fixed.lognormvariate(1, 1.0) * income_scale, 2),
            }
        )
    cards = [
        {
            "card_id": written_card(c, 1 if i % 9 == 4 else 0),
            "network": "VISA",
            "type": "virtual" if j == 0 else "debit",
            "last4": c[-4:],
            "issued": opened,
            "status": "active",
        }
        for j, c in enumerate(w.card_ids[i])
    ]
    methods = [
        {
            "type": t,
            "provider": fixed.choice(("Visa", "Mastercard", "SEPA", "Apple", "Google")),
            "added": opened,
        }
        for t in fixed.sample(V.PAYMENT_METHOD_TYPES, fixed.randrange(1, 4))
    ]
    debts = []
    if w.has_debt[i]:
        for j in range(fixed.randrange(1, 4)):
            principal = round(fixed.uniform(500, 40000), 2)
            debts.append(
                {
                    "debt_id": f"DB{w.fin_id[i][3:]}{j}",
                    "type": fixed.choice(V.DEBT_TYPES),
                    "principal": principal,
                    "outstanding": round(principal * fixed.uniform(0.05, 1.0), 2),
                    "interest_rate": round(fixed.uniform(0.02, 0.25), 4),
                    "status": fixed.choice(("current", "current", "current", "late", "default")),
                    "opened": opened,
                }
            )
    score = int(np.clip(int(w.credit_score[i]) + rnd.randrange(-15, 16), 300, 850))
    as_of = str(w.month_starts[m])
    day_from = max(int((w.join_date[i] - w.month_starts[m]).astype(int)), 0)
    return {
        "fin_id": w.fin_id[i],
        "crm_ref": w.crm_id[i] if rnd.random() < p.crossref_rate else None,
        "holder": {
            "name": name,
            "date_of_birth": str(w.birth[i]),
            "email": ident.email or None,
            "phone": ident.phone or None,
        },
        "address": {
            "street": ident.street,
            "city": ident.city,
            "postcode": ident.postcode or None,
            "country": w.country[i],
        },
        "plan_type": V.PLANS[int(w.plan[i, m])],
        "accounts": accounts,
        "cards": cards,
        "payment_methods": methods,
        "credit_score": {"score": score, "bureau": fixed.choice(V.BUREAUS), "as_of": as_of},
        "debts": debts,
        # never before the join date, the day the accounts it reports opened
        "updated_at": ctx.ts_in_month(rnd, day_from),
    }


def demographics(ctx: MonthContext) -> None:
    """Survey answers for new customers, and re-surveys of half of those who moved."""
    w, m, p = ctx.world, ctx.m, ctx.world.params
    rnd = py_rng(p.seed, "demographics", ctx.month)
    fb = ctx.builder(
        "demographics",
        f"demographics_{ctx.month}.xml",
        header=['<?xml version="1.0" encoding="UTF-8"?>', f'<demographics month="{ctx.month}">'],
        footer=["</demographics>"],
        serializer=_person_xml,
    )
    resurvey = _changed(w.addr_ver, m) & (np_rng(p.seed, "resurvey", ctx.month).random(w.n) < 0.5)
    who = w.in_demographics & ((w.join_m == m) | resurvey)
    for i in sorted(np.flatnonzero(who).tolist(), key=lambda j: w.demo_id[j]):
        ident = _identity(w, i, m, rnd)
        rec = {
            "demo_id": w.demo_id[i],
            "given": ident.first,
            "family": ident.last,
            "birth_date": w.birth[i].astype(object).strftime("%d/%m/%Y"),
            "gender": V.GENDERS[int(w.gender[i])],
            "marital_status": V.MARITAL[int(w.marital[i])],
            "education": V.EDUCATION[int(w.education[i])],
            "occupation": V.OCCUPATIONS[int(w.occupation[i])],
            "income_bracket": V.INCOME_BRACKETS[int(w.income[i])],
            "street": ident.street,
            "city": ident.city,
            "postcode": ident.postcode,
            "country": w.country[i],
            "phone": ident.phone,
            "crm_ref": w.crm_id[i] if rnd.random() < p.crossref_rate * 0.6 else "",
        }
        for fld in ("marital_status", "education", "occupation", "income_bracket"):
            if rnd.random() < p.missing_field_rate:
                rec[fld] = ""
        bad = _maybe_bad(rec, "demographics", p.bad_record_rate, rnd)
        fb.add(
            rec,
            record_id=w.demo_id[i],
            person_id=w.person_id[i],
            noise=";".join(ident.noise),
            bad_kind=bad,
            rnd=rnd,
        )
    ctx.finish(fb, rnd)


def _person_xml(r: dict[str, Any]) -> str:
    def el(tag: str, key: str | None = None) -> str:
        value = r[key or tag]
        return f"<{tag}/>" if value == "" else f"<{tag}>{escape(str(value))}</{tag}>"

    return (
        f"<person id={quoteattr(r['demo_id'])}>"
        f"<name>{el('given')}{el('family')}</name>{el('birth_date')}{el('gender')}"
        f"{el('marital_status')}{el('education')}{el('occupation')}{el('income_bracket')}"
        f"<address>{el('street')}{el('city')}{el('postcode')}{el('country')}</address>"
        f"{el('phone')}{el('crm_ref')}</person>"
    )


def service_interactions(ctx: MonthContext, batch: TxBatch) -> None:
    """Service log lines; topics follow what happened to the customer this month."""
    w, m, p = ctx.world, ctx.m, ctx.world.params
    rnd = py_rng(p.seed, "service_interactions", ctx.month)
    nrng = np_rng(p.seed, "service_counts", ctx.month)
    fb = ctx.builder("service_interactions", f"service_{ctx.month}.log", serializer=_service_line)
    notes = ctx.truth.table("notes_truth", ("interaction_id", "person_id", "topic", "sentiment"))
    state = w.state[:, m]
    alive = (state == 1) | (state == 2)
    lam = p.service_contact_rate * (1.0 + 2.0 * (state == 2)) * alive
    counts = nrng.poisson(lam)
    start = w.month_starts[m]
    ndays = int((w.month_starts[m + 1] - start).astype(int))
    start_s = int(start.astype("datetime64[s]").astype(np.int64))
    events: list[tuple[int, int, str]] = []  # (opened seconds, person, forced topic)
    for i in np.flatnonzero(counts).tolist():
        for _ in range(int(counts[i])):
            events.append((start_s + rnd.randrange(ndays * SECONDS_PER_DAY), i, ""))
    fraud_idx = np.flatnonzero(
        np.isin(batch.pattern, [PATTERNS.index("account_takeover"), PATTERNS.index("card_testing")])
    )
    victims: dict[int, Any] = {}
    for j in fraud_idx.tolist():
        victims.setdefault(int(batch.person[j]), int(batch.ts[j]))
    end_s = start_s + ndays * SECONDS_PER_DAY - 1
    for i, t in sorted(victims.items()):
        if rnd.random() < 0.6:
            events.append(
                (min(end_s, t + rnd.randrange(3600, 4 * SECONDS_PER_DAY)), i, "fraud_report")
            )
    events.sort()
    arch_names = V.ARCHETYPE_NAMES
    for seq, (opened, i, forced) in enumerate(events):
        iid = f"INT-{ctx.month.replace('-', '')}{seq:06d}"
        topic = forced or _service_topic(w, i, m, arch_names, rnd)
        neg = 0.7 if state[i] == 2 or topic == "fraud_report" else 0.3
        r = rnd.random()
        sentiment = (
            "negative" if r < neg else "neutral" if r < neg + (1 - neg) * 0.6 else ("positive")
        )
        minutes, templates = V.NOTE_TOPICS[topic]
        note = rnd.choice(templates[sentiment]).format(
            place=rnd.choice(w.merchants.name), amount=f"{rnd.uniform(5, 900):.2f}"
        )
        resolved = (
            ""
            if rnd.random() < 0.05
            else _iso(opened + int(60 * minutes * rnd.lognormvariate(0, 0.6)))
        )
        ref_kind = rnd.random()
        ident = _identity(w, i, m, rnd)
        if ref_kind < p.crossref_rate + 0.2 or not (ident.email or ident.phone):
            ref, noise = w.crm_id[i], ""
        elif ref_kind < 0.85 and ident.email:
            ref, noise = ident.email, ";".join(k for k in ident.noise if k.startswith("email"))
        else:
            ref = ident.phone or w.crm_id[i]
            noise = "phone_format" if "phone_format" in ident.noise else ""
        # Agents file about a quarter of contacts under a wrong or catch-all category.
        agent_type = (
            topic
            if rnd.random() < AGENT_TYPE_ACCURACY
            else rnd.choice((*V.NOTE_TOPIC_NAMES, "general"))
        )
        rec = {
            "logged_at": _iso(opened + rnd.randrange(0, 5)),
            "interaction_id": iid,
            "ref": ref,
            "channel": rnd.choice(V.SERVICE_CHANNELS),
            "type": agent_type,
            "opened_at": _iso(opened),
            "resolved_at": resolved,
            "note": note,
        }
        bad = _maybe_bad(rec, "service_interactions", p.bad_record_rate, rnd)
        fb.add(rec, record_id=iid, person_id=w.person_id[i], noise=noise, bad_kind=bad, rnd=rnd)
        notes["interaction_id"].append(iid)
        notes["person_id"].append(w.person_id[i])
        notes["topic"].append(topic)
        notes["sentiment"].append(sentiment)
    ctx.finish(fb, rnd)


def _service_topic(
    w: World, i: int, m: int, arch_names: tuple[str, ...], rnd: random.Random
) -> str:
    if m > 0 and w.plan[i, m] != w.plan[i, m - 1] and rnd.random() < 0.6:
        return "plan_upgrade"
    if m > 0 and w.addr_ver[i, m] != w.addr_ver[i, m - 1] and rnd.random() < 0.6:
        return "address_change"
    if w.state[i, m] == 2 and rnd.random() < 0.5:
        return "fees_complaint"
    if arch_names[int(w.archetype[i])] == "cross_border_lifestyle" and rnd.random() < 0.3:
        return "travel_notice"
    return rnd.choice(
        (
            "card_blocked",
            "dispute_charge",
            "fees_complaint",
            "app_login",
            "plan_upgrade",
            "app_login",
            "card_blocked",
        )
    )


def _iso(seconds: int) -> str:
    return str(np.datetime64(int(seconds), "s"))


def _service_line(r: dict[str, Any]) -> str:
    return (
        f"{r['logged_at']} | {r['interaction_id']} | ref={r['ref']} | "
        f"channel={r['channel']} | type={r['type']} | opened={r['opened_at']} | "
        f'resolved={r["resolved_at"]} | note="{r["note"]}"'
    )


def _add_rows(
    fb: FileBuilder,
    columns: tuple[str, ...],
    rows: list[list[str]],
    record_ids: list[str],
    persons: list[str],
    noise: list[str],
    defect_set: str,
    bad_mask: np.ndarray,
    rnd: random.Random,
) -> None:
    # Fast path for CSV rows whose values never need quoting; bad rows take the dict path.
    for pos, row in enumerate(rows):
        if bad_mask[pos]:
            rec = dict(zip(columns, row, strict=True))
            kind = pick_kind(defect_set, rnd)
            corrupt_fields(rec, defect_set, kind, rnd)
            fb.add(
                rec,
                record_id=record_ids[pos],
                person_id=persons[pos],
                noise=noise[pos],
                bad_kind=kind,
                rnd=rnd,
            )
        else:
            fb.add_line(
                ",".join(row), record_id=record_ids[pos], person_id=persons[pos], noise=noise[pos]
            )


def _email_noise(
    w: World, people: np.ndarray, rng: np.random.Generator, rnd: random.Random, with_missing: bool
) -> tuple[list[str], list[str]]:
    from cardlake.synth.noise import email_variant

    p = w.params
    variant = rng.random(len(people)) < p.email_variant_rate
    missing = (rng.random(len(people)) < p.missing_field_rate) & with_missing
    emails, noise = [], []
    for i, v, miss in zip(people.tolist(), variant.tolist(), missing.tolist(), strict=True):
        kinds = []
        email = w.email[i]
        if v:
            email = email_variant(email, rnd)
            kinds.append("email_variant")
        if miss:
            email = ""
            kinds.append("missing_field")
        emails.append(email)
        noise.append(";".join(kinds))
    return emails, noise


def product_usage(ctx: MonthContext) -> None:
    """One row per app user and product used this month."""
    w, m, p = ctx.world, ctx.m, ctx.world.params
    rnd = py_rng(p.seed, "product_usage", ctx.month)
    rng = np_rng(p.seed, "product_usage", ctx.month)
    fb = ctx.builder(
        "product_usage",
        f"product_usage_{ctx.month}.csv",
        header=[",".join(USAGE_COLUMNS)],
        columns=USAGE_COLUMNS,
    )
    eng_all = w.engagement[:, m]
    people = np.flatnonzero(w.in_app & (eng_all > 0))
    people = people[np.argsort(np.array(w.app_user_id, dtype=object)[people], kind="stable")]
    emails, email_noise = _email_noise(w, people, rng, rnd, with_missing=True)
    eng = eng_all[people]
    aff = np.array([V.PRODUCT_AFFINITY[a] for a in V.ARCHETYPE_NAMES])[w.archetype[people]]
    uses = rng.random(aff.shape) < aff * (0.4 + 0.6 * eng)[:, None]
    who, prod = np.nonzero(uses)  # row-major: person order, then product order
    n_rows = len(who)
    e, pa = eng[who], aff[who, prod]
    sessions = np.maximum(1, rng.exponential(25 * e * pa + 1)).astype(np.int64)
    minutes = np.round(sessions * rng.uniform(0.5, 6.0, n_rows), 1)
    ndays = int((w.month_starts[m + 1] - w.month_starts[m]).astype(int))
    last_day = np.clip((ndays * (0.3 + 0.7 * e * rng.random(n_rows))).astype(int) + 1, 1, ndays)
    crossref = rng.random(n_rows) < p.crossref_rate * 0.8
    version = np.clip(
        m * len(APP_VERSIONS) // p.n_months - rng.integers(0, 2, n_rows), 0, len(APP_VERSIONS) - 1
    )
    bad = rng.random(n_rows) < p.bad_record_rate
    prefix = f"US{ctx.month.replace('-', '')}"
    devices = {i: (w.device_id(i, m), V.DEVICE_OS[int(w.device_os[i, m])]) for i in people.tolist()}
    rows, rids, persons, noise = [], [], [], []
    for r, (j, k) in enumerate(zip(who.tolist(), prod.tolist(), strict=True)):
        i = int(people[j])
        uid = f"{prefix}{r + 1:07d}"
        dev, dev_os = devices[i]
        rows.append(
            [
                uid,
                w.app_user_id[i],
                emails[j],
                w.crm_id[i] if crossref[r] else "",
                ctx.month,
                V.PRODUCTS[k],
                str(sessions[r]),
                f"{minutes[r]:.1f}",
                f"{ctx.month}-{last_day[r]:02d}",
                dev,
                dev_os,
                APP_VERSIONS[int(version[r])],
            ]
        )
        rids.append(uid)
        persons.append(w.person_id[i])
        noise.append(email_noise[j])
    _add_rows(fb, USAGE_COLUMNS, rows, rids, persons, noise, "product_usage", bad, rnd)
    ctx.finish(fb, rnd)


def marketing_monthly(ctx: MonthContext) -> None:
    """Monthly CRM/marketing summary per contact, including recent churners (win-back)."""
    w, m, p = ctx.world, ctx.m, ctx.world.params
    rnd = py_rng(p.seed, "marketing_monthly", ctx.month)
    rng = np_rng(p.seed, "marketing_monthly", ctx.month)
    fb = ctx.builder(
        "marketing_monthly",
        f"marketing_{ctx.month}.csv",
        header=[",".join(MARKETING_COLUMNS)],
        columns=MARKETING_COLUMNS,
    )
    state_all = w.state[:, m]
    who = (state_all == 1) | (state_all == 2) | (w.churn_m == m) | (w.churn_m == m - 1)
    people = np.flatnonzero(who)
    people = people[np.argsort(np.array(w.contact_id, dtype=object)[people], kind="stable")]
    n = len(people)
    emails, noise = _email_noise(w, people, rng, rnd, with_missing=False)
    state = state_all[people]
    eng = w.engagement[people, m]
    plan_changed = _changed(w.plan, m)[people]
    dev_changed = _changed(w.device_ver, m)[people]
    sent = rng.geometric(1 / 6.0, n)
    fail_p = np.clip(0.03 + 0.25 * dev_changed + 0.4 * (eng == 0) + 0.15 * (state == 2), 0, 1)
    failed = rng.binomial(sent, fail_p)
    opened = rng.binomial(sent - failed, 0.1 + 0.5 * eng)
    winback = (state == 3) | ((state == 2) & (rng.random(n) < 0.4))
    campaign = np.where(winback, V.CAMPAIGNS.index("winback"), rng.integers(0, len(V.CAMPAIGNS), n))
    crossref = rng.random(n) < p.crossref_rate
    opted = rng.random(n) < 0.85
    bad = rng.random(n) < p.bad_record_rate
    end = str(w.month_starts[m + 1] - np.timedelta64(1, "D"))
    tf = ("false", "true")
    rows, rids, persons = [], [], []
    for j, i in enumerate(people.tolist()):
        rows.append(
            [
                w.contact_id[i],
                w.crm_id[i] if crossref[j] else "",
                emails[j],
                ctx.month,
                V.PLANS[int(w.plan[i, m])],
                tf[int(plan_changed[j])],
                tf[int(dev_changed[j])],
                str(sent[j]),
                str(failed[j]),
                str(opened[j]),
                V.CAMPAIGNS[int(campaign[j])],
                tf[int(opted[j])],
                end,
            ]
        )
        rids.append(w.contact_id[i])
        persons.append(w.person_id[i])
    _add_rows(fb, MARKETING_COLUMNS, rows, rids, persons, noise, "marketing_monthly", bad, rnd)
    ctx.finish(fb, rnd)


def merchants(ctx: MonthContext) -> None:
    """Reference merchants: all opened so far in the first month, then the new ones."""
    w, m = ctx.world, ctx.m
    rnd = py_rng(w.params.seed, "merchants_file", ctx.month)
    mer = w.merchants
    fb = ctx.builder(
        "merchants",
        f"merchants_{ctx.month}.csv",
        header=[",".join(MERCHANT_COLUMNS)],
        columns=MERCHANT_COLUMNS,
    )
    who = (mer.opened_m <= 0) if m == 0 else (mer.opened_m == m)
    for i in sorted(np.flatnonzero(who).tolist(), key=lambda j: mer.merchant_id[j]):
        mcc = V.MCCS[int(mer.mcc[i])]
        fb.add(
            {
                "merchant_id": mer.merchant_id[i],
                "name": mer.name[i],
                "mcc": mcc[0],
                "category": mcc[1],
                "country": mer.country[i],
                "city": mer.city[i],
                "online": str(bool(mer.online[i])).lower(),
                "opened_on": str(mer.opened[i]),
            },
            record_id=mer.merchant_id[i],
            person_id="",
        )
    fb.finish(
        landing_root=ctx.landing_root,
        truth=ctx.truth,
        rnd=rnd,
        duplicate_rate=0.0,
        redelivery_rate=0.0,
    )


def fx_rates(ctx: MonthContext) -> None:
    """Daily FX rates of the month, units of each currency per USD."""
    w, m = ctx.world, ctx.m
    rnd = py_rng(w.params.seed, "fx_file", ctx.month)
    fb = ctx.builder(
        "fx_rates", f"fx_rates_{ctx.month}.csv", header=[",".join(FX_COLUMNS)], columns=FX_COLUMNS
    )
    lo = int((w.month_starts[m] - w.fx_days[0]).astype(int))
    hi = int((w.month_starts[m + 1] - w.fx_days[0]).astype(int))
    for d in range(lo, hi):
        day = str(w.fx_days[d])
        for c, ccy in enumerate(V.CURRENCIES):
            fb.add(
                {"date": day, "currency": ccy, "units_per_usd": f"{w.fx[d, c]:.6f}"},
                record_id=f"{day},{ccy}",
                person_id="",
            )
    fb.finish(
        landing_root=ctx.landing_root,
        truth=ctx.truth,
        rnd=rnd,
        duplicate_rate=0.0,
        redelivery_rate=0.0,
    )


def card_transactions(ctx: MonthContext, batch: TxBatch) -> None:
    """Daily card CSV and wallet JSON-lines files, and the transactions' truth."""
    w, m, p = ctx.world, ctx.m, ctx.world.params
    k = len(batch.ts)
    brng = np_rng(p.seed, "tx_defects", ctx.month)
    bad_mask = brng.random(k) < p.bad_record_rate
    rnd = py_rng(p.seed, "card_transactions", ctx.month)
    ts_str = np.datetime_as_string(batch.ts.astype("datetime64[s]"), unit="s")
    person_ids = np.array(w.person_id, dtype=object)[batch.person]
    merchant_ids = np.array([*w.merchants.merchant_id, ""], dtype=object)[batch.merchant]
    mcc_codes = np.array([*[x[0] for x in V.MCCS], ""], dtype=object)[batch.mcc]
    countries = np.array([*V.ALL_COUNTRIES, ""], dtype=object)
    m_country = countries[batch.m_country]
    ip_country = countries[batch.ip_country]
    ccy = np.array(V.CURRENCIES, dtype=object)[batch.currency]
    channel = np.array(V.CHANNELS, dtype=object)[batch.channel]
    direction = np.array(("debit", "credit"), dtype=object)[batch.direction]
    state = np.array(V.STATES, dtype=object)[batch.state]
    wallets = np.array([*w.wallet_id, ""], dtype=object)
    wallet = wallets[batch.person]
    counterparty = wallets[batch.counterparty]

    start = w.month_starts[m]
    ndays = int((w.month_starts[m + 1] - start).astype(int))
    start_s = int(start.astype("datetime64[s]").astype(np.int64))
    bounds = np.searchsorted(batch.ts, start_s + SECONDS_PER_DAY * np.arange(ndays + 1))
    is_card = batch.channel < N_CARD_CHANNELS
    for d in range(ndays):
        date = str(start + np.timedelta64(d, "D"))
        idx = np.arange(bounds[d], bounds[d + 1])
        card_idx = idx[is_card[idx]]
        wal_idx = idx[~is_card[idx]]
        fb = ctx.builder(
            "card_transactions",
            f"card_tx_{date}.csv",
            header=[",".join(CARD_TX_COLUMNS)],
            columns=CARD_TX_COLUMNS,
        )
        recs = [
            [
                batch.tx_id[j],
                written_card(str(batch.card[j]), _card_style(j)),
                ts_str[j],
                f"{batch.amount[j]:.2f}",
                ccy[j],
                merchant_ids[j],
                mcc_codes[j],
                m_country[j],
                channel[j],
                direction[j],
                state[j],
                batch.device[j],
                ip_country[j],
            ]
            for j in card_idx.tolist()
        ]
        lines = [",".join(r) for r in recs]
        for pos in np.flatnonzero(bad_mask[card_idx]).tolist():
            rec = dict(zip(CARD_TX_COLUMNS, recs[pos], strict=True))
            kind = pick_kind("card_tx_csv", rnd)
            corrupt_fields(rec, "card_tx_csv", kind, rnd)
            values = [str(rec[c]) for c in CARD_TX_COLUMNS]
            if kind == "malformed_csv":
                values = values[: len(values) // 2]
            lines[pos] = ",".join(values)
            fb.bad[pos] = kind
        fb.extend_lines(lines, batch.tx_id[card_idx].tolist(), person_ids[card_idx].tolist())
        ctx.finish(fb, rnd)

        fb = ctx.builder("card_transactions", f"wallet_tx_{date}.jsonl", serializer=_json_line)
        lines = [
            f'{{"transaction_id":"{batch.tx_id[j]}","wallet_id":"{wallet[j]}",'
            f'"timestamp":"{ts_str[j]}","amount":{batch.amount[j]:.2f},'
            f'"currency":"{ccy[j]}","channel":"{channel[j]}","direction":"{direction[j]}",'
            f'"state":"{state[j]}","counterparty_wallet":'
            + (f'"{counterparty[j]}"' if counterparty[j] else "null")
            + f',"device":{{"id":"{batch.device[j]}","ip_country":"{ip_country[j]}"}}}}'
            for j in wal_idx.tolist()
        ]
        for pos in np.flatnonzero(bad_mask[wal_idx]).tolist():
            rec = json.loads(lines[pos])
            kind = pick_kind("wallet_tx_jsonl", rnd)
            corrupt_fields(rec, "wallet_tx_jsonl", kind, rnd)
            line = _json_line(rec)
            if kind == "invalid_json":
                line = break_text(line, kind, rnd)
            lines[pos] = line
            fb.bad[pos] = kind
        fb.extend_lines(lines, batch.tx_id[wal_idx].tolist(), person_ids[wal_idx].tolist())
        ctx.finish(fb, rnd)

    t = ctx.truth.table("transactions_truth", ())
    t["transaction_id"] = batch.tx_id
    t["person_id"] = person_ids
    t["timestamp"] = ts_str.astype(object)
    t["channel"] = channel
    t["amount_usd"] = batch.amount_usd
    t["fraud_probability"] = batch.fraud_p
    t["is_fraud"] = batch.is_fraud
    t["pattern"] = np.array(PATTERNS, dtype=object)[batch.pattern]
    t["reported_at"] = np.where(
        batch.reported_at >= 0,
        np.datetime_as_string(np.maximum(batch.reported_at, 0).astype("datetime64[s]"), unit="s"),
        "",
    ).astype(object)


def _card_style(j: int) -> int:
    # Most card numbers are written plain; some in groups of four by space (1) or dash (2).
    return 1 if j % 17 == 3 else 2 if j % 23 == 5 else 0


def chargebacks(ctx: MonthContext, batches: list[TxBatch]) -> None:
    """Fraud reports whose report time falls in this month (from this and earlier months)."""
    w, m, p = ctx.world, ctx.m, ctx.world.params
    rnd = py_rng(p.seed, "chargebacks", ctx.month)
    lo = int(w.month_starts[m].astype("datetime64[s]").astype(np.int64))
    hi = int(w.month_starts[m + 1].astype("datetime64[s]").astype(np.int64))
    rows = []
    for b in batches:
        for j in np.flatnonzero((b.reported_at >= lo) & (b.reported_at < hi)).tolist():
            instrument = (
                written_card(str(b.card[j]), _card_style(j))
                if b.card[j]
                else w.wallet_id[int(b.person[j])]
            )
            rows.append(
                (
                    int(b.reported_at[j]),
                    str(b.tx_id[j]),
                    instrument,
                    float(b.amount[j]),
                    V.CURRENCIES[int(b.currency[j])],
                    w.person_id[int(b.person[j])],
                )
            )
    rows.sort()
    fb = ctx.builder(
        "chargebacks",
        f"chargebacks_{ctx.month}.csv",
        header=[",".join(CHARGEBACK_COLUMNS)],
        columns=CHARGEBACK_COLUMNS,
    )
    for seq, (t, tx, instrument, amount, ccy, person) in enumerate(rows):
        rid = f"CB{ctx.month.replace('-', '')}{seq:06d}"
        rec = {
            "report_id": rid,
            "transaction_id": tx,
            "instrument_id": instrument,
            "reported_at": _iso(t),
            "reason_code": rnd.choice(REASON_CODES),
            "amount": f"{amount:.2f}",
            "currency": ccy,
        }
        bad = _maybe_bad(rec, "chargebacks", p.bad_record_rate, rnd)
        fb.add(rec, record_id=rid, person_id=person, bad_kind=bad, rnd=rnd)
    ctx.finish(fb, rnd)


def engagement_truth(ctx: MonthContext) -> None:
    """Hidden engagement state of every person in this month."""
    w, m = ctx.world, ctx.m
    t = ctx.truth.table("engagement_monthly", ())
    t["person_id"] = np.array(w.person_id, dtype=object)
    t["state"] = np.array(ENGAGEMENT_STATES, dtype=object)[w.state[:, m]]
    t["engagement"] = np.round(w.engagement[:, m], 4)
    t["plan_type"] = np.array(V.PLANS, dtype=object)[w.plan[:, m]]
    t["device_id"] = np.array([w.device_id(i, m) for i in range(w.n)], dtype=object)
    t["address_version"] = w.addr_ver[:, m].astype(np.int64)
    t["churn_month"] = np.array(
        [w.months[c] if c < len(w.months) else "" for c in w.churn_m.tolist()], dtype=object
    )
