"""Derive instructkit/steps/anonymize/facilities.txt from the CMS hospital list.

Source: ../shared/data/gazetteers/cms_hospitals.csv (CMS Hospital General Information, a
US federal work: public domain). Only names derived from it ship; the CSV itself does not.

CMS writes official names in upper case ("JOHNS HOPKINS HOSPITAL, THE", "ST ANTHONYS
HOSPITAL", "CALIFORNIA PACIFIC MEDICAL CTR-DAVIES CAMPUS HOSP"). People write "Johns
Hopkins", "St. Anthony's", "California Pacific". Each official name gives:

  name   the official name, cleaned: no "THE", no "INC"/"LLC"/"CAH"/trailing numbers, the
         campus after a dash split off, abbreviations written out (CTR -> Center);
  core   the name without its facility words ("Johns Hopkins"), and without a trailing
         generic word too ("Manatee Memorial" -> "Manatee"), and with a state written
         the short way people say it ("Massachusetts General" -> "Mass General");
  weak   a core of one word, or only places and generic words ("Mercy", "Scott County",
         "Southeast Alabama"), and a name with nothing else before its facility words
         ("Community Hospital"): the detector takes it only after a facility context
         ("admitted to Mercy") or before a facility word ("Mercy ED").

The detector canonicalises both this list and the text the same way (case, St/Saint,
Mt/Mount, Ctr/Center, "&"/"and", apostrophes, hyphens and spaces), so spelling variants
need no entries of their own.

    python bench/derive_facilities.py [--csv PATH] [--out instructkit/steps/anonymize/facilities.txt]
"""

from __future__ import annotations

import argparse
import csv
import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CSV = Path(os.environ.get("INSTRUCTKIT_SHARED_DATA", ROOT.parent / "shared" / "data")) / "gazetteers" / "cms_hospitals.csv"
OUT = ROOT / "instructkit" / "anonymize" / "facilities.txt"

EXPAND = {"CTR": "CENTER", "CNTR": "CENTER", "MED": "MEDICAL", "HOSP": "HOSPITAL", "HOSPS": "HOSPITALS",
          "REG": "REGIONAL", "REGL": "REGIONAL", "MEM": "MEMORIAL", "UNIV": "UNIVERSITY", "GEN": "GENERAL",
          "HLTH": "HEALTH", "SYS": "SYSTEM", "CMTY": "COMMUNITY", "COMM": "COMMUNITY", "CNTY": "COUNTY",
          "MT": "MOUNT", "ST": "SAINT", "SVCS": "SERVICES", "HOSPITALL": "HOSPITAL", "DR": "DOCTOR",
          "DRS": "DOCTORS"}
#: words that make a name a facility; a core is what stands before them
KIND = {"HOSPITAL", "HOSPITALS", "MEDICAL", "CENTER", "CENTERS", "HEALTH", "HEALTHCARE", "CLINIC",
        "CLINICS", "SYSTEM", "SYSTEMS", "CARE", "INFIRMARY", "HOSPICE", "CAMPUS", "SERVICES",
        "INSTITUTE", "FOUNDATION", "AUTHORITY", "DISTRICT", "ASSOCIATION", "FACILITY", "REHABILITATION",
        "REHAB", "SURGICAL", "SURGERY", "SPECIALTY", "PSYCHIATRIC", "BEHAVIORAL", "ORTHOPEDIC",
        "ORTHOPAEDIC", "HEART", "CANCER", "WOMENS", "WOMEN'S", "CHILDRENS", "CHILDREN'S", "CHILDREN",
        "PEDIATRIC", "CRITICAL", "ACCESS", "ACUTE", "LONG", "TERM", "NETWORK", "PAVILION", "SANITARIUM",
        "SANATORIUM", "HOME", "PARTNERS", "UNIT"}
#: words that alone (with places) do not name a facility
GENERIC = {"MEMORIAL", "REGIONAL", "COMMUNITY", "GENERAL", "UNIVERSITY", "COUNTY", "CITY", "AREA",
           "NORTH", "SOUTH", "EAST", "WEST", "NORTHEAST", "NORTHWEST", "SOUTHEAST", "SOUTHWEST",
           "CENTRAL", "NORTHERN", "SOUTHERN", "EASTERN", "WESTERN", "UPPER", "LOWER", "MID", "GREATER",
           "VALLEY", "LAKE", "LAKES", "RIVER", "BAY", "COAST", "MOUNTAIN", "HILLS", "PARK", "NEW", "OF",
           "AND", "&", "THE", "AT", "FOR", "IN", "SAINT", "MOUNT", "FORT", "PARISH", "STATE", "DOCTORS",
           "DOCTOR", "MUNICIPAL", "VETERANS", "METHODIST", "BAPTIST", "PRESBYTERIAN", "LUTHERAN",
           "ADVENTIST", "CATHOLIC", "MERCY", "GOOD", "SAMARITAN", "HOLY", "SACRED", "TRINITY", "UNITED",
           "PROVIDENCE", "DEACONESS", "SHRINERS", "KINDRED", "SELECT", "VIBRA", "ENCOMPASS", "CHI",
           "TRIUMPH", "SUMMIT", "HIGHLANDS", "HIGHLAND", "VIEW", "VISTA", "SPRINGS", "ISLAND", "SHORE",
           "SHORES", "POINT", "HEIGHTS", "CREST", "RIDGE"}
STATES = {"ALABAMA", "ALASKA", "ARIZONA", "ARKANSAS", "CALIFORNIA", "COLORADO", "CONNECTICUT", "DELAWARE",
          "FLORIDA", "GEORGIA", "HAWAII", "IDAHO", "ILLINOIS", "INDIANA", "IOWA", "KANSAS", "KENTUCKY",
          "LOUISIANA", "MAINE", "MARYLAND", "MASSACHUSETTS", "MICHIGAN", "MINNESOTA", "MISSISSIPPI",
          "MISSOURI", "MONTANA", "NEBRASKA", "NEVADA", "HAMPSHIRE", "JERSEY", "MEXICO", "YORK", "CAROLINA",
          "CAROLINAS", "DAKOTA", "OHIO", "OKLAHOMA", "OREGON", "PENNSYLVANIA", "RHODE", "TENNESSEE", "TEXAS",
          "UTAH", "VERMONT", "VIRGINIA", "WASHINGTON", "WISCONSIN", "WYOMING", "PUERTO", "RICO", "GUAM"}
#: how people shorten a state inside a hospital's name ("Mass General", "Penn Medicine")
STATE_SHORT = {"MASSACHUSETTS": "MASS", "PENNSYLVANIA": "PENN", "CALIFORNIA": "CAL", "MICHIGAN": "MICH",
               "MINNESOTA": "MINN", "TENNESSEE": "TENN", "CONNECTICUT": "CONN", "WISCONSIN": "WISC"}


def clean(official: str) -> tuple[list[str], list[str]]:
    """(words of the name, words of the campus) of one CMS name."""
    name = re.sub(r"\(.*?\)", " ", official.upper())
    name = re.sub(r",\s*(?:THE|INC\.?|LLC)\s*$", "", name.strip())
    name = re.sub(r"^THE\s+", "", name)
    campus = ""
    m = re.search(r"\s*[-/]\s*(?=\S+(?:\s+\S+)*\s+CAMPUS\b)|\s+-\s+", name)
    if m:
        name, campus = name[:m.start()], name[m.end():]
    words = [EXPAND.get(w.strip(".,"), w.strip(".,")) for w in re.findall(r"[A-Z0-9'&.-]+", name)]
    while words and (words[-1] in {"INC", "LLC", "CAH", "THE", "LTD", "CORP", "PC", "NO", "#"}
                     or words[-1].isdigit()):
        words.pop()
    words = [w for w in words if w != "THE"]
    cwords = [EXPAND.get(w.strip(".,"), w.strip(".,")) for w in re.findall(r"[A-Z0-9'&.-]+", campus)]
    cwords = [w for w in cwords if w not in KIND and not w.isdigit()]
    return words, cwords


def cores(words: list[str]) -> list[list[str]]:
    """The name without its facility words: what stands before the first one, and that
    without a trailing generic word ("MANATEE MEMORIAL" -> "MANATEE")."""
    out = []
    first_kind = next((i for i, w in enumerate(words) if w in KIND), len(words))
    core = words[:first_kind]
    while core and core[-1] in {"OF", "AND", "&", "AT", "FOR", "THE"}:
        core.pop()
    if core and core != words:
        out.append(core)
    trimmed = list(core)
    while len(trimmed) > 1 and trimmed[-1] in GENERIC:
        trimmed.pop()
    if trimmed and trimmed != core:
        out.append(trimmed)
    for c in list(out):
        short = [STATE_SHORT.get(w, w) for w in c]
        if short != c:
            out.append(short)
    return out


def is_weak(core: list[str], cities: set[str]) -> bool:
    """A core that is only places and generic words names no facility by itself."""
    text = " ".join(core)
    if text in cities or len(core) == 1 and len(core[0]) <= 3:
        return True
    return all(w in GENERIC or w in STATES or w in cities or w.isdigit() for w in core)


def title(words: list[str]) -> str:
    out = []
    for w in words:
        if w in {"OF", "AND", "AT", "FOR", "THE", "IN"}:
            out.append(w.lower())
        elif re.fullmatch(r"[A-Z]{2,5}", w) and not re.search(r"[AEIOU]", w):
            out.append(w)
        else:
            out.append("-".join(p[:1] + p[1:].lower() for p in w.split("-")).replace("'S", "'s"))
    return " ".join(out)


def derive(csv_path: Path) -> list[tuple[str, str]]:
    with csv_path.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    cities = {r["city"].upper() for r in rows}
    entries: dict[str, str] = {}
    rank = {"name": 0, "core": 1, "weak": 2}
    for r in rows:
        words, campus = clean(r["hospital_name"])
        if not words:
            continue
        made = cores(words)
        # a name with nothing but generic words before its facility words ("COMMUNITY
        # HOSPITAL", "DOCTORS HOSPITAL") is a kind of place, not one place
        generic_name = (all(w in GENERIC or w in STATES or w in KIND for w in words)
                        or not any(w in KIND for w in words) and len(words) < 2)
        found = [("weak" if generic_name else "name", words)]
        if campus:
            found.append(("name", words + campus))
        for core in made:
            # "CEDARS-SINAI" is two words as people write it ("Cedars Sinai")
            n_words = len(re.split(r"[- ]+", " ".join(core)))
            found.append(("weak" if is_weak(core, cities) or n_words < 2 else "core", core))
        for kind, ws in found:
            form = title(ws)
            # the same form from two hospitals keeps its strongest kind
            if form not in entries or rank[kind] < rank[entries[form]]:
                entries[form] = kind
    return sorted(((k, f) for f, k in entries.items()), key=lambda kv: (rank[kv[0]], kv[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--csv", type=Path, default=CSV)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    entries = derive(args.csv)
    header = ("# Hospital names derived from CMS Hospital General Information (US public domain)\n"
              "# by bench/derive_facilities.py: <kind>\\t<form>; kinds: name (official, cleaned),\n"
              "# core (without facility words), weak (a core that needs a facility context).\n")
    args.out.write_text(header + "".join(f"{k}\t{f}\n" for k, f in entries), encoding="utf-8")
    counts = {k: sum(1 for kk, _ in entries if kk == k) for k in ("name", "core", "weak")}
    print(f"{len(entries)} forms -> {args.out} {counts}")


if __name__ == "__main__":
    main()
