"""The generator's promises, checked on a small world generated once for the module.

Expected values come from the landing contract (docs/data_dictionary.md) written out here
by hand, from standard parsers, or from the parameters; never from the generator's code.
"""

from __future__ import annotations

import calendar
import csv
import hashlib
import json
import math
import re
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from cardlake.bronze.tokenise import luhn_valid
from cardlake.synth import SOURCES, SynthParams, generate

PARAMS = SynthParams(
    seed=7,
    n_customers=700,
    start_month="2024-01",
    n_months=18,
    bad_record_rate=0.03,
    duplicate_record_rate=0.01,
    redelivery_rate=0.05,
)
MONTHS = [f"{2024 + (i // 12)}-{i % 12 + 1:02d}" for i in range(18)]

DATE, TS, DMY = "%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%d/%m/%Y"
COUNTRIES = {
    "GB",
    "IE",
    "DE",
    "FR",
    "ES",
    "NL",
    "PL",
    "US",
    "CH",
    "SE",
    "JP",
    "TR",
    "AE",
    "TH",
    "MX",
    "PT",
    "IT",
}
CURRENCIES = {"USD", "EUR", "GBP", "PLN", "CHF", "SEK", "JPY", "TRY", "AED", "THB", "MXN"}
SERVICE_RE = re.compile(
    r"^(?P<logged_at>\S+) \| (?P<interaction_id>INT-\d+) \| ref=(?P<ref>[^|]*?) \| "
    r"channel=(?P<channel>\w+) \| type=(?P<type>\w+) \| opened=(?P<opened>\S+) \| "
    r'resolved=(?P<resolved>\S*) \| note="(?P<note>[^"]*)"$'
)
CSV_COLUMNS = {
    "crm_customers": 18,
    "product_usage": 12,
    "marketing_monthly": 13,
    "chargebacks": 7,
    "merchants": 8,
    "fx_rates": 3,
    "card_transactions": 13,
}
SYNTACTIC = {"malformed_csv", "invalid_json", "broken_xml", "malformed_line"}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    generate(landing_root=root / "landing", truth_root=root / "truth", params=PARAMS)
    return root


@pytest.fixture(scope="module")
def truth(run: Path) -> dict[str, list[dict]]:
    names = (
        "source_records",
        "bad_records",
        "persons",
        "source_keys",
        "transactions_truth",
        "notes_truth",
        "engagement_monthly",
        "deliveries",
    )
    return {n: pq.read_table(run / "truth" / n).to_pylist() for n in names}


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _ok_date(value: str, fmt: str) -> bool:
    try:
        datetime.strptime(value, fmt)
    except ValueError:
        return False
    return True


def _ok_amount(value: object) -> bool:
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return 0 < x <= 1_000_000


def _landing_files(run: Path) -> list[Path]:
    return sorted(p for p in (run / "landing").rglob("*") if p.is_file())


def _check_record(source: str, name: str, rec: dict, keys: dict[str, set[str]]) -> bool:
    """True when a parsed record meets the documented contract of its source."""
    if source == "crm_customers":
        return (
            _ok_date(rec["join_date"], DATE)
            and _ok_date(rec["updated_at"], TS)
            and (rec["date_of_birth"] == "" or _ok_date(rec["date_of_birth"], DATE))
            and rec["country"] in COUNTRIES
        )
    if source == "financial_records":
        return (
            _ok_date(rec["holder"]["date_of_birth"], DATE)
            and rec["address"]["country"] in COUNTRIES
            and all(a["currency"] in CURRENCIES for a in rec["accounts"])
        )
    if source == "demographics":
        return _ok_date(rec["birth_date"], DMY) and rec["country"] in COUNTRIES
    if source == "service_interactions":
        return (
            _ok_date(rec["opened"], TS)
            and _ok_date(rec["logged_at"], TS)
            and (rec["resolved"] == "" or _ok_date(rec["resolved"], TS))
        )
    if source == "product_usage":
        return _ok_date(rec["last_seen"], DATE) and float(rec["minutes"]) >= 0
    if source == "marketing_monthly":
        return _ok_date(rec["extracted_on"], DATE)
    if source == "chargebacks":
        return _ok_date(rec["reported_at"], TS) and rec["transaction_id"] in keys["transaction_id"]
    if source == "card_transactions" and name.endswith(".csv"):
        return (
            _ok_date(rec["timestamp"], TS)
            and _ok_amount(rec["amount"])
            and rec["currency"] in CURRENCIES
            and rec["merchant_country"] in COUNTRIES
            and re.sub(r"[ -]", "", rec["card_id"]) in keys["card_id"]
        )
    if source == "card_transactions":
        return (
            _ok_date(rec["timestamp"], TS)
            and _ok_amount(rec["amount"])
            and rec["currency"] in CURRENCIES
            and rec["wallet_id"] in keys["wallet_id"]
        )
    return True  # reference files carry no defects


def _parse_file(path: Path, source: str, keys: dict[str, set[str]]) -> tuple[int, set[int]]:
    """(number of records, line numbers that fail to parse or break the contract)."""
    lines = path.read_text(encoding="utf-8").split("\n")
    assert lines[-1] == "", f"{path} must end with a newline"
    lines = lines[:-1]
    failed: set[int] = set()
    if path.suffix == ".csv":
        rows = list(csv.reader(lines, strict=True))
        header = rows[0]
        assert len(header) == CSV_COLUMNS[source]
        for no, row in enumerate(rows[1:], start=2):
            if len(row) != len(header) or not _check_record(
                source, path.name, dict(zip(header, row, strict=True)), keys
            ):
                failed.add(no)
        return len(rows) - 1, failed
    if path.suffix == ".jsonl":
        for no, line in enumerate(lines, start=1):
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                failed.add(no)
                continue
            if not _check_record(source, path.name, rec, keys):
                failed.add(no)
        return len(lines), failed
    if path.suffix == ".xml":
        assert lines[0].startswith("<?xml") and lines[1].startswith("<demographics")
        assert lines[-1] == "</demographics>"
        for no, line in enumerate(lines[2:-1], start=3):
            try:
                el = ET.fromstring(line)
            except ET.ParseError:
                failed.add(no)
                continue
            rec = {
                "birth_date": el.findtext("birth_date") or "",
                "country": el.findtext("address/country") or "",
            }
            if not _check_record(source, path.name, rec, keys):
                failed.add(no)
        good = "\n".join(x for i, x in enumerate(lines, start=1) if i not in failed)
        ET.fromstring(good.split("\n", 1)[1])  # the file minus its bad lines is one document
        return len(lines) - 3, failed
    assert path.suffix == ".log"
    for no, line in enumerate(lines, start=1):
        match = SERVICE_RE.match(line)
        if match is None or not _check_record(source, path.name, match.groupdict(), keys):
            failed.add(no)
    return len(lines), failed


def test_same_seed_gives_byte_identical_output(run: Path, tmp_path: Path) -> None:
    generate(landing_root=tmp_path / "landing", truth_root=tmp_path / "truth", params=PARAMS)
    assert _digests(tmp_path / "landing") == _digests(run / "landing")
    assert _digests(tmp_path / "truth") == _digests(run / "truth")


def test_another_seed_gives_other_data(run: Path, tmp_path: Path) -> None:
    other = replace(PARAMS, seed=PARAMS.seed + 1)
    generate(
        landing_root=tmp_path / "landing",
        truth_root=tmp_path / "truth",
        params=other,
        months=["2024-03"],
    )
    mine, theirs = _digests(run / "landing"), _digests(tmp_path / "landing")
    for rel in (
        "crm_customers/2024-03/crm_customers_2024-03.csv",
        "card_transactions/2024-03/card_tx_2024-03-12.csv",
        "service_interactions/2024-03/service_2024-03.log",
    ):
        assert theirs[rel] != mine[rel]


def test_month_only_run_equals_the_full_runs_month(run: Path, tmp_path: Path) -> None:
    generate(
        landing_root=tmp_path / "landing",
        truth_root=tmp_path / "truth",
        params=PARAMS,
        months=["2024-09", "2025-06"],
    )
    full, part = _digests(run / "landing"), _digests(tmp_path / "landing")
    expected = {k: v for k, v in full.items() if k.split("/")[1] in ("2024-09", "2025-06")}
    assert part == expected
    full_truth, part_truth = _digests(run / "truth"), _digests(tmp_path / "truth")
    for rel, digest in part_truth.items():
        assert full_truth[rel] == digest, rel
    assert any("month=2024-09" in rel for rel in part_truth)
    assert not any("month=2024-08" in rel for rel in part_truth)


def test_layout_has_every_source_every_month_and_daily_files(run: Path) -> None:
    landing = run / "landing"
    assert (
        {p.name for p in landing.iterdir()}
        == set(SOURCES)
        == {
            "crm_customers",
            "financial_records",
            "demographics",
            "service_interactions",
            "product_usage",
            "card_transactions",
            "marketing_monthly",
            "chargebacks",
            "merchants",
            "fx_rates",
        }
    )
    for month in MONTHS:
        y, m = (int(x) for x in month.split("-"))
        days = calendar.monthrange(y, m)[1]
        tx = {p.name for p in (landing / "card_transactions" / month).iterdir()}
        originals = {n for n in tx if "_redelivery" not in n}
        assert len(originals) == 2 * days
        assert f"card_tx_{month}-{days:02d}.csv" in tx
        assert f"wallet_tx_{month}-01.jsonl" in tx
        fx = (landing / "fx_rates" / month / f"fx_rates_{month}.csv").read_text()
        assert len(fx.strip().split("\n")) == 1 + days * len(CURRENCIES)
        for source in (
            "crm_customers",
            "financial_records",
            "service_interactions",
            "product_usage",
            "marketing_monthly",
        ):
            assert any((landing / source / month).iterdir()), (source, month)


def test_every_file_parses_except_the_records_the_manifest_marks_bad(
    run: Path, truth: dict[str, list[dict]]
) -> None:
    keys: dict[str, set[str]] = defaultdict(set)
    for row in truth["source_keys"]:
        keys[row["key_name"]].add(row["key_value"])
    keys["transaction_id"] = {r["transaction_id"] for r in truth["transactions_truth"]}
    # The key universe really is what the reference sources deliver.
    fin_text = "".join(
        p.read_text() for p in (run / "landing" / "financial_records").rglob("*.jsonl")
    )
    written = re.findall(r'"card_id": ?"([0-9 -]+)"', fin_text)
    assert written and {re.sub(r"[ -]", "", c) for c in written} <= keys["card_id"]
    assert len(keys["card_id"]) > PARAMS.n_customers
    # Card numbers have the real shape: 16 digits, Luhn-valid, sometimes grouped by space/dash.
    assert all(len(k) == 16 and luhn_valid(k) for k in keys["card_id"])
    assert any(" " in c for c in written)

    failures: set[tuple[str, int]] = set()
    for path in _landing_files(run):
        source = path.relative_to(run / "landing").parts[0]
        _, failed = _parse_file(path, source, keys)
        rel = str(path.relative_to(run / "landing"))
        failures |= {(rel, no) for no in failed}
    manifest = {(r["file"], r["line"]) for r in truth["bad_records"]}
    assert failures == manifest
    kinds = Counter(r["kind"] for r in truth["bad_records"])
    for kind in (
        "malformed_csv",
        "invalid_json",
        "broken_xml",
        "malformed_line",
        "unparseable_date",
        "negative_amount",
        "absurd_amount",
        "unknown_currency",
        "unknown_country",
        "orphan_reference",
    ):
        assert kinds[kind] > 0, kind


def test_bad_record_and_duplicate_rates_are_near_their_parameters(
    truth: dict[str, list[dict]],
) -> None:
    defect_sources = {
        "crm_customers",
        "financial_records",
        "demographics",
        "service_interactions",
        "product_usage",
        "card_transactions",
        "marketing_monthly",
        "chargebacks",
    }
    originals = [
        r
        for r in truth["source_records"]
        if r["source"] in defect_sources and not r["is_duplicate"]
    ]
    bad = [r for r in truth["bad_records"] if "_redelivery" not in r["file"]]
    n = len(originals)
    sd = math.sqrt(PARAMS.bad_record_rate * (1 - PARAMS.bad_record_rate) / n)
    assert abs(len(bad) / n - PARAMS.bad_record_rate) < 4 * sd
    dup_records = [
        r
        for r in truth["source_records"]
        if r["is_duplicate"] and "_redelivery" not in r["file"] and r["source"] in defect_sources
    ]
    sd = math.sqrt(PARAMS.duplicate_record_rate / n)
    assert abs(len(dup_records) / n - PARAMS.duplicate_record_rate) < 4 * sd
    originals_files = [
        d for d in truth["deliveries"] if d["kind"] == "original" and d["source"] in defect_sources
    ]
    redelivered = [d for d in truth["deliveries"] if d["kind"] == "redelivery"]
    rate = len(redelivered) / len(originals_files)
    assert abs(rate - PARAMS.redelivery_rate) < 4 * math.sqrt(
        PARAMS.redelivery_rate / len(originals_files)
    )


def test_redelivered_files_are_exact_copies(run: Path, truth: dict[str, list[dict]]) -> None:
    redelivered = [d for d in truth["deliveries"] if d["kind"] == "redelivery"]
    assert len(redelivered) > 5
    for d in redelivered:
        copy = (run / "landing" / d["file"]).read_bytes()
        assert copy == (run / "landing" / d["duplicate_of"]).read_bytes()


def test_identity_noise_is_applied_at_its_rates_and_really_changes_fields(
    run: Path, truth: dict[str, list[dict]]
) -> None:
    persons = {p["person_id"]: p for p in truth["persons"]}
    where = {
        (r["file"], r["line"]): r for r in truth["source_records"] if r["source"] == "crm_customers"
    }
    bad = {(r["file"], r["line"]) for r in truth["bad_records"]}
    counts: Counter[str] = Counter()
    n = 0
    for path in sorted((run / "landing" / "crm_customers").rglob("*.csv")):
        rel = str(path.relative_to(run / "landing"))
        rows = list(csv.reader(path.read_text().splitlines()))
        header = rows[0]
        for no, row in enumerate(rows[1:], start=2):
            if (rel, no) in bad or "_redelivery" in rel or where[(rel, no)]["is_duplicate"]:
                continue
            rec = dict(zip(header, row, strict=True))
            truth_row = where[(rel, no)]
            person = persons[truth_row["person_id"]]
            noise = set(filter(None, truth_row["noise"].split(";")))
            counts.update(noise)
            n += 1
            names = (rec["first_name"], rec["last_name"])
            if not noise & {"nickname", "name_typo", "name_swap", "case_whitespace"}:
                assert names == (person["first_name"], person["last_name"])
            if "name_typo" in noise and "name_swap" not in noise:
                assert (names[0].strip().lower(), names[1].strip().lower()) != (
                    person["first_name"].lower(),
                    person["last_name"].lower(),
                )
            if not noise & {"email_variant", "missing_field"}:
                assert rec["email"] == person["email"]
            if "email_variant" in noise and rec["email"]:
                assert rec["email"] != person["email"]
            if not noise & {"phone_format", "missing_field"}:
                assert rec["phone"] == person["phone"]
            if "phone_format" in noise and rec["phone"]:
                digits = re.sub(r"\D", "", rec["phone"])
                assert rec["phone"] != person["phone"]
                assert digits.lstrip("0")[-8:] == person["phone"][-8:]
    assert n > 500
    for kind, rate in (
        ("name_typo", PARAMS.name_typo_rate),
        ("name_swap", PARAMS.name_swap_rate),
        ("case_whitespace", PARAMS.case_whitespace_rate),
        ("email_variant", PARAMS.email_variant_rate),
        ("phone_format", PARAMS.phone_format_variation_rate),
        ("address_abbreviation", PARAMS.address_abbreviation_rate),
        ("missing_field", PARAMS.missing_field_rate),
    ):
        sd = math.sqrt(rate * (1 - rate) / n)
        # A second sign-up adds its own typo, so name_typo may run a little high.
        assert abs(counts[kind] / n - rate) < 4 * sd + (0.02 if kind == "name_typo" else 0)


def test_truth_covers_every_source_record(run: Path, truth: dict[str, list[dict]]) -> None:
    by_file: dict[str, set[int]] = defaultdict(set)
    for r in truth["source_records"]:
        by_file[r["file"]].add(r["line"])
    persons = {p["person_id"] for p in truth["persons"]}
    for path in _landing_files(run):
        rel = str(path.relative_to(run / "landing"))
        lines = path.read_text().split("\n")[:-1]
        if path.suffix == ".csv":
            expected = set(range(2, len(lines) + 1))
        elif path.suffix == ".xml":
            expected = set(range(3, len(lines)))
        else:
            expected = set(range(1, len(lines) + 1))
        assert by_file[rel] == expected, rel
    reference = {"merchants", "fx_rates"}
    for r in truth["source_records"]:
        if r["source"] not in reference:
            assert r["person_id"] in persons
    keyed = {r["key_value"]: r["person_id"] for r in truth["source_keys"]}
    for r in truth["source_records"]:
        if r["source"] in ("crm_customers", "financial_records", "demographics"):
            assert keyed[r["source_record_id"]] == r["person_id"]


def test_a_person_appears_in_several_sources_under_different_keys(
    run: Path, truth: dict[str, list[dict]]
) -> None:
    sources_of: dict[str, set[str]] = defaultdict(set)
    for r in truth["source_records"]:
        if r["person_id"]:
            sources_of[r["person_id"]].add(r["source"])
    spread = Counter(len(s) for s in sources_of.values())
    many = sum(c for k, c in spread.items() if k >= 5)
    assert many / len(sources_of) > 0.7
    keys_of: dict[str, dict[str, str]] = defaultdict(dict)
    for r in truth["source_keys"]:
        keys_of[r["person_id"]][r["key_name"]] = r["key_value"]
    sample = keys_of["P0000001"]
    assert len({sample["crm_id"], sample["fin_id"], sample["demo_id"], sample["contact_id"]}) == 4
    crm_keys = Counter(r["person_id"] for r in truth["source_keys"] if r["key_name"] == "crm_id")
    assert any(c == 2 for c in crm_keys.values())  # duplicate sign-ups exist
    households = Counter(p["phone"] for p in truth["persons"])
    assert any(c >= 2 for c in households.values())  # shared household phones


def test_cross_references_are_present_only_sometimes(run: Path) -> None:
    refs = []
    for path in sorted((run / "landing" / "financial_records").rglob("*.jsonl")):
        for line in path.read_text().splitlines():
            try:
                refs.append(json.loads(line)["crm_ref"])
            except json.JSONDecodeError:
                continue
    share = sum(r is not None for r in refs) / len(refs)
    assert abs(share - PARAMS.crossref_rate) < 0.06


def test_financial_records_never_report_before_their_accounts_opened(run: Path) -> None:
    checked = 0
    for path in sorted((run / "landing" / "financial_records").rglob("*.jsonl")):
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
                updated = datetime.strptime(rec["updated_at"], TS).date()
                opened = [datetime.strptime(a["opened"], DATE).date() for a in rec["accounts"]]
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                continue  # a record the manifest marks bad (other tests account for those)
            assert all(o <= updated for o in opened), (path.name, rec["fin_id"])
            checked += 1
    assert checked > 500


def test_fraud_labels_follow_their_probabilities(truth: dict[str, list[dict]]) -> None:
    tx = truth["transactions_truth"]
    assert 100_000 > len(tx) > 30_000
    mean_p = sum(t["fraud_probability"] for t in tx) / len(tx)
    rate = sum(t["is_fraud"] for t in tx) / len(tx)
    assert abs(rate - mean_p) < 4 * math.sqrt(mean_p / len(tx))
    patterns = Counter(t["pattern"] for t in tx if t["is_fraud"])
    assert {"card_testing", "account_takeover", "none"} <= set(patterns)
    for t in tx:
        if t["reported_at"]:
            assert t["is_fraud"]
            delay = (
                datetime.strptime(t["reported_at"], TS) - datetime.strptime(t["timestamp"], TS)
            ).total_seconds() / 86400
            assert 1 <= delay <= PARAMS.max_report_delay_days + 1


def test_customers_are_18_to_91_and_engagement_decays_before_churn(
    truth: dict[str, list[dict]],
) -> None:
    start = datetime(2024, 1, 1)
    for p in truth["persons"]:
        age = (start - datetime.strptime(p["birth_date"], DATE)).days / 365.25
        assert 18 <= age <= 91.01
    by_person: dict[str, dict[str, dict]] = defaultdict(dict)
    for row in truth["engagement_monthly"]:
        by_person[row["person_id"]][str(row["month"])] = row
    churners = [p for p in truth["persons"] if p["churn_month"]]
    assert len(churners) > 20
    decayed = 0
    for p in churners:
        rows = by_person[p["person_id"]]
        i = MONTHS.index(p["churn_month"])
        assert rows[MONTHS[i]]["state"] == "churned" and rows[MONTHS[i]]["engagement"] == 0
        if i >= 1 and rows[MONTHS[i - 1]]["state"] == "declining":
            decayed += 1
    assert decayed == len(churners)


def test_notes_truth_covers_every_interaction(run: Path, truth: dict[str, list[dict]]) -> None:
    notes = {n["interaction_id"]: n for n in truth["notes_truth"]}
    ids = set()
    agree = total = 0
    for path in sorted((run / "landing" / "service_interactions").rglob("*.log")):
        ids |= set(re.findall(r"INT-\d+", path.read_text()))
        for line in path.read_text().splitlines():
            match = SERVICE_RE.match(line)
            if match:
                total += 1
                agree += match["type"] == notes[match["interaction_id"]]["topic"]
    assert ids == set(notes)
    # The agent's category is a noisy view of the true topic, not a copy of it.
    assert 0.65 < agree / total < 0.9
    assert {n["sentiment"] for n in notes.values()} == {"negative", "neutral", "positive"}
    assert len({n["topic"] for n in notes.values()}) >= 6


def test_device_ids_are_opaque_shared_and_changed_at_their_rates() -> None:
    from cardlake.synth.world import build_world

    params = replace(PARAMS, n_customers=4000, duplicate_identity_rate=0.2)
    w = build_world(params)
    devices = {w.device_id(i, 0) for i in range(w.n)}
    assert all(re.fullmatch(r"dev_[0-9a-f]{16}", d) for d in devices)
    assert not any(w.person_id[i][1:] in w.device_id(i, 0) for i in range(w.n))
    # Household members share a device at the configured rate (of households).
    pairs: dict[int, list[int]] = defaultdict(list)
    for i, h in enumerate(w.household.tolist()):
        if h >= 0:
            pairs[h].append(i)
    shared = [w.device_id(a, 0) == w.device_id(b, 0) for a, b in pairs.values()]
    share = sum(shared) / len(shared)
    n = len(shared)
    tol = 4 * math.sqrt(params.household_device_share_rate * 0.7 / n)
    assert abs(share - params.household_device_share_rate) < tol, (share, n)
    # Unrelated people never share one: distinct devices = people minus shared households.
    assert len(devices) == w.n - sum(shared)
    # A share of duplicate sign-ups comes from another device than the first profile.
    changed = len(w.dup_device) / len(w.dup_crm)
    tol = 4 * math.sqrt(params.signup_device_change_rate * 0.7 / len(w.dup_crm))
    assert abs(changed - params.signup_device_change_rate) < tol, changed
    assert all(d not in devices for d in w.dup_device.values())


def test_product_use_follows_its_probabilities(run: Path) -> None:
    use = pq.read_table(run / "truth" / "product_use_monthly").to_pylist()
    assert len(use) == PARAMS.n_customers * 7 * len(MONTHS)  # every person, product and month
    expected = sum(u["use_probability"] for u in use)
    variance = sum(u["use_probability"] * (1 - u["use_probability"]) for u in use)
    records = pq.read_table(run / "truth" / "source_records").to_pylist()
    rows = {r["source_record_id"] for r in records if r["source"] == "product_usage"}
    assert abs(len(rows) - expected) < 4 * math.sqrt(variance)


def test_adverse_event_probability_only_while_on_the_books(
    run: Path, truth: dict[str, list[dict]]
) -> None:
    events = pq.read_table(run / "truth" / "adverse_event_monthly").to_pylist()
    state = {
        (e["person_id"], str(e["month"])): e["state"]
        for e in pq.read_table(run / "truth" / "engagement_monthly").to_pylist()
    }
    assert len(events) == PARAMS.n_customers * len(MONTHS)
    for e in events:
        p = e["adverse_event_probability"]
        if state[(e["person_id"], str(e["month"]))] in ("active", "declining"):
            assert 0.0 < p < 1.0
        else:
            assert p == 0.0


def test_failed_share_probability_by_hand() -> None:
    import numpy as np

    from cardlake.synth.truths import _failed_share_probability

    # Poisson(0.5) transactions, each failed or declined with 0.05; a quarter or more failed:
    # n=1: 0.30327 * 0.05, n=2: 0.075816 * 0.0975, n=3: 0.012636 * 0.142625,
    # n=4: 0.0015795 * 0.185494 (one failure is enough up to four), n=5 needs two: 0.000158 *
    # 0.0226; the rest is below 1e-6. Sum 0.015163 + 0.007392 + 0.001802 + 0.000293 + 0.000004.
    got = _failed_share_probability(np.array([0.0, 0.5]))
    assert got[0] == 0.0
    assert abs(got[1] - 0.024654) < 2e-5
