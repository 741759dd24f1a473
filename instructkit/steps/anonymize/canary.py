"""Canary self-test: synthetic PHI injected into copies of real records must come out gone.

The canary values are made with Faker (seeded), one of each identifier kind, and written
into the instruction, input, output and context of copies of the first records of the run.
The copies go through the same detector and operator as real records and are thrown away;
only counts and the kinds that were missed are reported (the values are synthetic anyway).
"""

from __future__ import annotations

import copy
import random
import re
from typing import Any

from instructkit._resources import require
from instructkit.records import set_path, text_fields, to_messages

__all__ = ["canary_values", "canary_text", "canary_check"]

#: the source name of the canary copies (declared by no recipe, so never free of PHI)
CANARY_SOURCE = "(canary)"


def canary_values(seed: int = 0) -> dict[str, str]:
    """One synthetic value per identifier kind: {kind: value}."""
    faker = require("faker", "anonymize", "the canary self-test").Faker("en_US")
    faker.seed_instance(10_007 + seed)
    rng = random.Random(10_007 + seed)
    dob = faker.date_between(start_date="-80y", end_date="-20y")
    visit = faker.date_between(start_date="-3y", end_date="-1d")
    return {
        "NAME": f"{faker.first_name()} {faker.last_name()}",
        "PROVIDER": faker.last_name(),
        "MRN": f"{rng.randint(10_000_000, 99_999_999)}",
        "DATE_NUMERIC": dob.strftime("%m/%d/%Y"),
        "DATE_LONG": f"{visit.strftime('%B')} {visit.day}, {visit.year}",
        "DATE_ISO": faker.date_between(start_date="-2y", end_date="-1d").isoformat(),
        "SSN": f"{rng.randint(100, 665)}-{rng.randint(10, 99)}-{rng.randint(1000, 9999)}",
        "PHONE": f"({rng.randint(201, 989)}) {rng.randint(201, 989)}-{rng.randint(1000, 9999)}",
        "EMAIL": faker.email(),
        "URL": f"https://{faker.domain_name()}/patients/{rng.randint(1000, 9999)}",
        "IP": faker.ipv4_public(),
        "HOSPITAL": f"{faker.last_name()} Memorial Hospital",
        "ADDRESS": f"{rng.randint(10, 9999)} {faker.street_name()}",
        "CITY": faker.city(),
        "ZIP": faker.zipcode(),
        "AGE": str(rng.randint(90, 104)),
        "ACCOUNT": f"{rng.randint(100_000, 999_999)}{rng.randint(100, 999)}",
        "HEALTH_PLAN": f"{faker.lexify('???').upper()}{rng.randint(100_000_000, 999_999_999)}",
        "DEVICE_ID": f"SN-{rng.randint(1000, 9999)}-{faker.lexify('??').upper()}",
        "ACCESSION": f"A{rng.randint(10_000_000, 99_999_999)}",
        "LICENSE": f"{faker.lexify('??').upper()}{rng.randint(1_000_000, 9_999_999)}",
    }


def canary_text(v: dict[str, str], state: str = "IL") -> str:
    """The canary values in clinical-note sentences (street suffix added by the template)."""
    return (f"Patient: {v['NAME']}, MRN {v['MRN']}, DOB {v['DATE_NUMERIC']}, SSN {v['SSN']}. "
            f"Seen on {v['DATE_LONG']} and {v['DATE_ISO']} at {v['HOSPITAL']} by Dr. {v['PROVIDER']}. "
            f"Home: {v['ADDRESS']} Street, {v['CITY']}, {state} {v['ZIP']}. "
            f"Phone {v['PHONE']}, e-mail {v['EMAIL']}, portal {v['URL']} from IP {v['IP']}. "
            f"A {v['AGE']}-year-old. Account no. {v['ACCOUNT']}; health plan ID: {v['HEALTH_PLAN']}; "
            f"pacemaker serial number: {v['DEVICE_ID']}; accession #{v['ACCESSION']}; "
            f"licence number: {v['LICENSE']}.")


def _needles(v: dict[str, str]) -> dict[str, list[str]]:
    """What must not survive, by kind (a name's family name alone counts too)."""
    out = {k: [val] for k, val in v.items()}
    out["NAME"].append(v["NAME"].split()[-1])
    return out


def canary_check(stage: Any, sample: list[dict], seed: int = 0) -> dict[str, Any]:
    values = canary_values(seed)
    text = canary_text(values)
    base = sample or [_blank_record()]
    copies = []
    for rec in base:
        c = copy.deepcopy(rec)
        # the planted values are PHI whatever the sample's source declared: a copy of a record
        # from a `phi: false` source must not be passed on as that source's text is
        if isinstance(c.get("source"), dict):
            c["source"] = {**c["source"], "name": CANARY_SOURCE}
        c["instruction"] = f"{c.get('instruction') or 'Summarize the note.'}\n{text}"
        c["input"] = f"{c.get('input') or ''}\n{text}".strip()
        c["output"] = f"{c.get('output') or 'Summary.'}\n{text}"
        # every other text field the record has (meta, context, provenance, source)
        for path, val in text_fields(c):
            if path[0] not in ("instruction", "input", "output", "messages"):
                set_path(c, path, f"{val}\n{text}")
        if "messages" in c:
            system = [m["content"] for m in c["messages"] if m.get("role") == "system"]
            c["messages"] = to_messages(c, system_prompt=system[0] if system else None)
        copies.append(c)
    results = stage.anonymize_records(copies)
    needles = _needles(values)
    missed: set[str] = set()
    n_records = 0
    for res in results:
        if isinstance(res, Exception):
            missed.add("ERROR")
            continue
        n_records += 1
        blob = "\n".join(_strings(res))
        for kind, vals in needles.items():
            if any(re.search(rf"(?<![\w-]){re.escape(val)}(?![\w-])", blob) for val in vals):
                missed.add(kind)
    total = len(needles)
    return {"enabled": True, "records": len(copies), "values": total,
            "removed": total - len(missed - {"ERROR"}), "passed": not missed,
            "missed_types": sorted(missed)}


def _strings(rec: dict) -> list[str]:
    return [t for _, t in text_fields(rec)]


def _blank_record() -> dict:
    return {"id": "0" * 24, "instruction": "Summarize the note.", "input": "", "output": "Summary.",
            "provenance": {}}
