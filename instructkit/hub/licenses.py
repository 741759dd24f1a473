"""The licence table (``schemas/licenses.json``): may a derivative of a source be published,
and under which card licence.

Three classes: *redistributable* (public domain, CC0, CC-BY, CC-BY-SA, MIT, Apache-2.0,
ODC-By, ...), *conditional* (CC-BY-NC: only under a non-commercial card licence) and
*blocked* (any -ND licence, PhysioNet credentialed / DUA data such as MIMIC, ``unknown``).
The card licence is the most restrictive source licence (highest ``rank``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from instructkit._resources import load_schema

__all__ = ["LicenseInfo", "SourceLicense", "license_info", "classify_source", "derive_card_license",
           "check_card_license", "is_dua_bound"]


@dataclass(frozen=True)
class LicenseInfo:
    """One row of the licence table."""

    id: str
    cls: str  # redistributable | conditional | blocked
    rank: int
    hub: str
    name: str = ""
    attribution: bool = False
    share_alike: bool = False
    non_commercial: bool = False
    no_derivatives: bool = False
    dua: bool = False
    url: str | None = None
    note: str | None = None
    known: bool = True


@dataclass
class SourceLicense:
    """A source (or a licence seen on records) classified against the table."""

    name: str
    license: str
    info: LicenseInfo
    declaration: str | None = None
    dua_match: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def publishable(self) -> bool:
        return not self.problems


def _norm(s: str) -> str:
    return re.sub(r"-+", "-", re.sub(r"[\s_]+", "-", (s or "").strip().lower()))


@functools.cache
def _table() -> tuple[dict[str, LicenseInfo], tuple[re.Pattern, ...]]:
    data = load_schema("licenses.json")
    by_name: dict[str, LicenseInfo] = {}
    for row in data["licenses"]:
        info = LicenseInfo(id=row["id"], cls=row["class"], rank=row["rank"], hub=row["hub"],
                           name=row.get("name", row["id"]), attribution=row.get("attribution", False),
                           share_alike=row.get("share_alike", False),
                           non_commercial=row.get("non_commercial", False),
                           no_derivatives=row.get("no_derivatives", False), dua=row.get("dua", False),
                           url=row.get("url"), note=row.get("note"))
        for name in (row["id"], *row.get("aliases", [])):
            by_name[_norm(name)] = info
    patterns = tuple(re.compile(p, re.IGNORECASE) for p in data.get("dua_patterns", []))
    return by_name, patterns


def license_info(license_id: str | None) -> LicenseInfo:
    """The table row for a licence id; an id not in the table is an unknown licence."""
    by_name, _ = _table()
    hit = by_name.get(_norm(license_id or "unknown"))
    if hit is not None:
        return hit
    unknown = by_name[_norm("unknown")]
    return LicenseInfo(id=license_id or "unknown", cls="blocked", rank=unknown.rank, hub="other",
                       name=license_id or "unknown", known=False)


def is_dua_bound(source: Mapping[str, Any]) -> str | None:
    """Which DUA pattern a source's name, dataset, url, location, description or citation
    matches (MIMIC, eICU, credentialed access, ...), or None."""
    _, patterns = _table()
    for key in ("name", "dataset", "url", "location", "description", "citation"):
        text = source.get(key)
        if not isinstance(text, str):
            continue
        for p in patterns:
            if p.search(text):
                return f"{key} matches '{p.pattern}'"
    return None


def classify_source(source: Mapping[str, Any]) -> SourceLicense:
    """Whether a derivative of ``source`` (a manifest ``sources[]`` entry) may be published.

    A licence the table does not know is treated as unknown, unless the rights holder
    declared it (``license_declaration``). DUA-bound data never passes, declared or not.
    """
    lic = str(source.get("license") or "unknown")
    info = license_info(lic)
    declaration = source.get("license_declaration")
    out = SourceLicense(name=str(source.get("name", "?")), license=lic, info=info,
                        declaration=declaration, dua_match=is_dua_bound(source))
    if info.dua or out.dua_match:
        why = f"licence {lic}" if info.dua else out.dua_match
        out.problems.append(f"source '{out.name}' is bound by a data use agreement ({why}): "
                            "DUA-bound data can never be published, even with a licence declaration")
    elif not info.known:
        if declaration:
            # the rights holder states the terms: publish under 'other', printing the declaration
            out.info = LicenseInfo(id=lic, cls="redistributable", rank=license_info("unknown").rank - 1,
                                   hub="other", name=lic, known=False)
        else:
            out.problems.append(f"source '{out.name}' has licence '{lic}', which is not in the licence "
                                "table: treated as unknown. If you hold the rights, add a "
                                "`license_declaration` to the source in the recipe")
    elif info.id == "unknown":
        out.problems.append(f"source '{out.name}' has an unknown licence: write the source's licence "
                            "in the recipe (it is never guessed)")
    elif info.no_derivatives:
        out.problems.append(f"source '{out.name}' is licensed {info.id} (no derivatives): a dataset "
                            "built from it must not be published")
    elif info.cls == "blocked":
        out.problems.append(f"source '{out.name}' has licence {info.id}, which does not allow publishing")
    return out


def derive_card_license(sources: Iterable[SourceLicense]) -> tuple[str, str | None]:
    """The card licence (Hub id) and, for 'other', a licence name: the most restrictive wins."""
    sources = list(sources)
    if not sources:
        return "unknown", None
    worst = max(sources, key=lambda s: s.info.rank)
    share_alike = {s.info.id for s in sources if s.info.share_alike}
    if len(share_alike) == 1 and not worst.info.share_alike:
        # a share-alike source dictates the licence; a more restrictive other one conflicts
        # (check_card_license reports the conflict); say what was found
        return "other", "mixed: " + ", ".join(sorted({s.info.id for s in sources}))
    if worst.info.hub == "other":
        return "other", worst.info.id
    return worst.info.hub, None


def check_card_license(card_license: str | None, sources: Iterable[SourceLicense]) -> list[str]:
    """Problems with publishing these sources under ``card_license`` (a Hub id or SPDX id)."""
    sources = list(sources)
    problems: list[str] = []
    card = license_info(card_license) if card_license and card_license != "other" else None
    nc = [s for s in sources if s.info.non_commercial and s.info.cls == "conditional"]
    if nc and (card is None or not card.non_commercial):
        problems.append(
            "source(s) " + ", ".join(f"'{s.name}' ({s.info.id})" for s in nc) +
            f" are non-commercial: the card licence must be non-commercial too, not '{card_license}'")
    share_alike = sorted({s.info.id for s in sources if s.info.share_alike})
    if len(share_alike) > 1:
        problems.append("share-alike licences " + " and ".join(share_alike) + " cannot be combined")
    elif share_alike:
        sa = license_info(share_alike[0])
        if card is None or card.hub != sa.hub:
            problems.append(f"a share-alike source ({sa.id}) requires the card licence {sa.hub}, "
                            f"not '{card_license}'")
    if card is not None and card.known:
        ranked = [s for s in sources if s.info.known]
        worst = max(ranked, key=lambda s: s.info.rank, default=None)
        if worst is not None and card.rank < worst.info.rank and not problems:
            problems.append(f"card licence '{card_license}' is less restrictive than source "
                            f"'{worst.name}' ({worst.info.id})")
    return problems
