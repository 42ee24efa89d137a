"""EVALUATION / DEV ADAPTER: the generator's landing files as one file of person records.

This exists so the matcher can be measured against the generator's truth before bronze
exists. It parses the person-bearing sources (CRM CSV, financial JSON lines, demographics
XML) with the standard library, skips lines that do not parse and exact re-deliveries, and
writes one Parquet with the columns named in :data:`SYNTH_MAPPING`. The silver job reads
bronze instead; nothing in production should import this module.

``record_id`` is ``<source>:<source_record_id>@<delivery month>``: CRM and core banking send a
new row for the same key when a profile changes, and each row is a record to resolve.
"""

from __future__ import annotations

import csv
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pandas as pd

from cardlake.synth.sources import REDELIVERY_SUFFIX

PERSON_SOURCES = ("crm_customers", "financial_records", "demographics")

SYNTH_MAPPING: dict[str, str] = {
    "record_id": "record_id",
    "given_name": "given_name",
    "surname": "surname",
    "full_name": "full_name",
    "date_of_birth": "date_of_birth",
    "email": "email",
    "phone": "phone",
    "address_1": "street",
    "city": "city",
    "postcode": "postcode",
    "country": "country",
    "xref_keys": "xref_keys",
}
"""The role mapping for the adapter's Parquet (``xref_keys``: ``|``-separated source keys)."""

_COLUMNS = (
    "record_id",
    "source",
    "source_record_id",
    "month",
    *sorted({v for k, v in SYNTH_MAPPING.items() if k != "record_id"}),
)


def _files(landing_root: Path, source: str, pattern: str) -> list[tuple[str, Path]]:
    out = []
    for path in sorted((landing_root / source).glob(f"*/{pattern}")):
        if REDELIVERY_SUFFIX not in path.stem:
            out.append((path.parent.name, path))
    return out


def _crm(landing_root: Path) -> list[dict[str, Any]]:
    rows = []
    for month, path in _files(landing_root, "crm_customers", "*.csv"):
        with open(path, newline="", encoding="utf-8") as fh:
            for rec in csv.DictReader(fh):
                if None in rec or rec.get("updated_at") is None:  # malformed line
                    continue
                keys = [f"crm:{rec['crm_id']}"] + (
                    [f"fin:{rec['fin_ref']}"] if rec.get("fin_ref") else []
                )
                rows.append(
                    {
                        "source": "crm_customers",
                        "source_record_id": rec["crm_id"],
                        "month": month,
                        "given_name": rec["first_name"],
                        "surname": rec["last_name"],
                        "date_of_birth": rec["date_of_birth"],
                        "email": rec["email"],
                        "phone": rec["phone"],
                        "street": rec["street"],
                        "city": rec["city"],
                        "postcode": rec["postcode"],
                        "country": rec["country"],
                        "xref_keys": "|".join(keys),
                    }
                )
    return rows


def _financial(landing_root: Path) -> list[dict[str, Any]]:
    rows = []
    for month, path in _files(landing_root, "financial_records", "*.jsonl"):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                doc = json.loads(line)
                holder, addr = doc["holder"], doc["address"]
                fin_id = doc["fin_id"]
            except (json.JSONDecodeError, KeyError, TypeError):
                continue
            if not isinstance(holder, dict) or not isinstance(addr, dict):
                continue
            keys = [f"fin:{fin_id}"] + ([f"crm:{doc['crm_ref']}"] if doc.get("crm_ref") else [])
            rows.append(
                {
                    "source": "financial_records",
                    "source_record_id": fin_id,
                    "month": month,
                    "full_name": holder.get("name"),
                    "date_of_birth": holder.get("date_of_birth"),
                    "email": holder.get("email"),
                    "phone": holder.get("phone"),
                    "street": addr.get("street"),
                    "city": addr.get("city"),
                    "postcode": addr.get("postcode"),
                    "country": addr.get("country"),
                    "xref_keys": "|".join(keys),
                }
            )
    return rows


def _demographics(landing_root: Path) -> list[dict[str, Any]]:
    rows = []
    for month, path in _files(landing_root, "demographics", "*.xml"):
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.startswith("<person"):
                continue
            try:
                el = ET.fromstring(line)
            except ET.ParseError:
                continue
            demo_id = el.get("id") or ""

            def text(xpath: str, el: ET.Element = el) -> str | None:
                found = el.find(xpath)
                return found.text if found is not None else None

            crm_ref = text("crm_ref")
            keys = [f"demo:{demo_id}"] + ([f"crm:{crm_ref}"] if crm_ref else [])
            rows.append(
                {
                    "source": "demographics",
                    "source_record_id": demo_id,
                    "month": month,
                    "given_name": text("name/given"),
                    "surname": text("name/family"),
                    "date_of_birth": text("birth_date"),
                    "phone": text("phone"),
                    "street": text("address/street"),
                    "city": text("address/city"),
                    "postcode": text("address/postcode"),
                    "country": text("address/country"),
                    "xref_keys": "|".join(keys),
                }
            )
    return rows


def synth_person_records(landing_root: str | Path) -> pd.DataFrame:
    """All person records in the landing zone, one row per delivered record (strings only)."""
    root = Path(landing_root)
    df = pd.DataFrame(_crm(root) + _financial(root) + _demographics(root))
    df["record_id"] = df["source"] + ":" + df["source_record_id"] + "@" + df["month"]
    # Exact duplicate lines inside a file are a delivery defect, not a second record.
    df = df.drop_duplicates(subset="record_id", keep="first")
    for col in _COLUMNS:
        if col not in df:
            df[col] = None
    return df.loc[:, list(_COLUMNS)].astype("string").reset_index(drop=True)


def synth_truth(truth_root: str | Path, records: pd.DataFrame) -> pd.DataFrame:
    """``record_id`` → ``true_id`` (the generator's person) for the adapter's records."""
    keys = pd.read_parquet(Path(truth_root) / "source_keys")
    keys = keys.loc[keys["source"].isin(PERSON_SOURCES), ["source", "key_value", "person_id"]]
    keys = keys.drop_duplicates(subset=["source", "key_value"])
    merged = records.loc[:, ["record_id", "source", "source_record_id"]].merge(
        keys, how="left", left_on=["source", "source_record_id"], right_on=["source", "key_value"]
    )
    return (
        merged.loc[merged["person_id"].notna(), ["record_id", "person_id"]]
        .rename(columns={"person_id": "true_id"})
        .astype("string")
        .reset_index(drop=True)
    )


def write_synth_person_records(
    landing_root: str | Path, truth_root: str | Path, out_dir: str | Path
) -> tuple[Path, Path]:
    """Writes ``records.parquet`` and ``truth.parquet`` under ``out_dir``; returns both paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    records = synth_person_records(landing_root)
    truth = synth_truth(truth_root, records)
    records_path, truth_path = out / "records.parquet", out / "truth.parquet"
    records.to_parquet(records_path, index=False)
    truth.to_parquet(truth_path, index=False)
    return records_path, truth_path
