"""PHI detection: Presidio's AnalyzerEngine on spaCy, with the project's clinical recognizers.

The recognizers, the deny list and the masks are data (``recognizers.yaml``,
``denylist.yaml`` next to this file). ``PhiDetector.detect_many`` runs spaCy once over a
batch of texts (``nlp.pipe``: NER, the tagger only where a proper noun may hide, the
tokenizer alone on texts without a letter) and hands the precomputed NLP artifacts to
Presidio, which is what makes it several times faster than ``AnalyzerEngine.analyze`` per
text; Presidio's engine does its context step in one pass, and its slowest stock
recognizers are asked only about texts that can hold their match (``STOCK_NEEDS``).
Findings are mapped to the project's types (``NAME``, ``DATE``, ``MRN`` ...), checked
against the deny list (medicine is not PHI), kept off existing masks, and made
non-overlapping.
"""

from __future__ import annotations

import functools
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from instructkit._resources import require
# Finding and the kinds live in findings.py (the audit, report and card read them without
# this module); they stay importable from here
from instructkit.steps.anonymize.findings import PHI_TYPES, STRUCTURED_TYPES, Finding
from instructkit.steps.anonymize.facilities import facility_validator, make_gazetteer_recognizer
from instructkit.steps.anonymize.name_candidates import ALPHA_RUN as _ALPHA_RUN
from instructkit.steps.anonymize.name_candidates import NAME_PREFIX as _NAME_PREFIX
from instructkit.steps.anonymize.name_candidates import name_candidates
from instructkit.steps.anonymize.name_candidates import name_shaped as _name_shaped
from instructkit.steps.anonymize.name_context import all_lower_case, plausible_lower_case_name
from instructkit.steps.anonymize.name_model import entity_spans, sentences
from instructkit.steps.anonymize.normalize import normalize, remap_findings
from instructkit.steps.anonymize.public_lines import (PublicLines, month_year, population_date, study_site,
                                                     year_after_month)
from instructkit.steps.anonymize.regex_guard import guarded
from instructkit.steps.anonymize.scope import GENERAL, ProseScope
from instructkit.steps.anonymize.shapes import conjoined_numbers, et_al_before, public_value, rank_before
from instructkit.steps.anonymize.terms import Eponyms, plural_forms

logger = logging.getLogger("instructkit")

__all__ = ["Finding", "PhiDetector", "load_recognizer_config", "configure_tldextract_offline",
           "PHI_TYPES", "STRUCTURED_TYPES"]

HERE = Path(__file__).resolve().parent


@functools.cache
def load_recognizer_config() -> dict[str, Any]:
    """The recognizer and deny-list data shipped next to this module."""
    cfg = yaml.safe_load((HERE / "recognizers.yaml").read_text(encoding="utf-8"))
    cfg["deny"] = yaml.safe_load((HERE / "denylist.yaml").read_text(encoding="utf-8"))
    return cfg


def expand(regex: str, fragments: dict[str, str]) -> str:
    return re.sub(r"\{\{(\w+)\}\}", lambda m: fragments[m.group(1)], regex)


_TLD_CONFIGURED = False


def configure_tldextract_offline() -> None:
    """Presidio's email/URL checks call ``tldextract.extract``, whose default extractor
    fetches the public suffix list over the network and caches it on disk. Swap in an
    extractor that uses only the snapshot bundled with tldextract: no network, no cache,
    no warning."""
    global _TLD_CONFIGURED
    if _TLD_CONFIGURED:
        return
    tldextract = require("tldextract", "anonymize", "offline e-mail and URL checks")
    from tldextract import tldextract as _impl

    _impl.TLD_EXTRACTOR = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None,
                                                fallback_to_snapshot=True)
    # load the snapshot now, so nothing happens lazily inside a worker
    _impl.TLD_EXTRACTOR("example.com")
    logging.getLogger("tldextract").setLevel(logging.ERROR)
    _TLD_CONFIGURED = True


# -- validators named in recognizers.yaml ------------------------------------------------------
def _over_89(text: str) -> bool:
    digits = re.sub(r"\D", "", text)
    return bool(digits) and 89 < int(digits) < 130


_DATE_SHAPE = re.compile(r"\d{4}[-.]\d{1,2}[-.]\d{1,2}|\d{1,2}[-.]\d{1,2}[-.]\d{2,4}")


def _phone_digits(text: str) -> bool:
    """7 to 15 digits (ITU E.164), in at most six groups, and not shaped like a date."""
    digits = sum(c.isdigit() for c in text)
    return 7 <= digits <= 15 and not _DATE_SHAPE.fullmatch(text.strip())


def _iban_checksum(text: str) -> bool:
    """ISO 13616 check digits (mod 97), for IBANs in any letter case."""
    s = re.sub(r"\s+", "", text).upper()
    if not (15 <= len(s) <= 34):
        return False
    n = "".join(str(int(c, 36)) for c in s[4:] + s[:4])
    return int(n) % 97 == 1


def _not_generic_facility(text: str, generic: frozenset[str]) -> bool:
    words = re.findall(r"[A-Za-z][A-Za-z'.&-]*", text)
    # the last word(s) are the facility kind; a name needs one non-generic word before them
    return any(w.lower() not in generic for w in words[:-1])


_SCHOOL_OF = re.compile(r"(?i)\b(?:university|college|school|faculty|academy|institute)\s+of\s+$")
_DISCIPLINE = re.compile(r"(?i)(?:[a-z]+(?:ology|ologists?|ics|istry|iatry|ians|ists)|medicine|nursing|"
                         r"pharmacy|surgery|surgeons|physicians|sciences?|health|arts|law|engineering|"
                         r"technology|dentistry)$")


def _result(pa: Any, recognizer: Any, entity: str, start: int, end: int, score: float) -> Any:
    """A Presidio finding that names its recognizer (``_clean`` reads the name)."""
    return pa.RecognizerResult(
        entity, start, end, score,
        analysis_explanation=pa.AnalysisExplanation(recognizer=recognizer.name,
                                                    original_score=score),
        recognition_metadata={pa.RecognizerResult.RECOGNIZER_NAME_KEY: recognizer.name,
                              pa.RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: recognizer.id})


def _make_recognizers(cfg: dict[str, Any], words: Any = None,
                      stop: frozenset[str] = frozenset()) -> list[Any]:
    """Presidio recognizers for the project's patterns (one per YAML entry)."""
    pa = require("presidio_analyzer", "anonymize", "PHI detection")
    generic = frozenset(w.lower() for w in cfg.get("generic_facility_words", []))
    on_span = {"over_89": _over_89, "phone_digits": _phone_digits, "iban": _iban_checksum,
               "not_generic_facility": lambda t: _not_generic_facility(t, generic)}
    fac = cfg.get("facilities") or {}
    title_after = re.compile(r"[ \t]+" + fac["title_after"]) if fac.get("title_after") else None
    agency = re.compile(r"\b" + fac["agency_heads"] + r"\b") if fac.get("agency_heads") else None
    society = re.compile(r"\b" + fac["society_of"] + r"\s+of\b") if fac.get("society_of") else None

    def named_facility(text: str, s: int, e: int) -> bool:
        """A facility's name: not only generic words, not the start of a longer title
        ("National Health Interview Survey"), and no agency ending in "Health" ("National
        Institutes of Health")."""
        span = text[s:e]
        if "\n" in span or not _not_generic_facility(span, generic):
            return False  # a heading above "Health care providers ..." is no facility
        # a society or a college of a profession ("American Academy of Pediatrics")
        if society is not None and society.search(span):
            return False
        if title_after is not None and title_after.match(text, e):
            return False
        return not (agency is not None and span.endswith("Health")
                    and agency.search(text[max(0, s - 30):e]))

    # a validator sees the text and the span (a facility check reads the words around it)
    validators = {k: (lambda f: lambda text, s, e: f(text[s:e]))(f) for k, f in on_span.items()}
    validators["plausible_facility"] = facility_validator(cfg, words, stop)
    validators["named_facility"] = named_facility

    def not_discipline(text: str, s: int, e: int) -> bool:
        """After "University of", "College of" a discipline is no place ("College of
        Obstetricians and Gynecologists", "College of Medicine")."""
        if not _SCHOOL_OF.search(text, max(0, s - 30), s):
            return True
        return not all(_DISCIPLINE.match(w) or w.lower() in ("and", "&", "of")
                       for w in text[s:e].split())

    validators["not_discipline"] = not_discipline
    # "6750 Koskikatu 25" names its street in a word no English dictionary holds; "Medication
    # 1 Medication 2", "Hospital day 1 Hospital day 3" (table headers) hold only common words
    # neither a count ("60 Class I and 40 Class II") nor a rank ("Level 2 Trauma Center")
    validators["unknown_street_word"] = lambda text, s, e: (words is None or any(
        w not in words for w in re.findall(r"[^\W\d_]{3,}", text[s:e]))) and not (
        conjoined_numbers(text[s:e]) or rank_before(text, s))
    validators["street_number"] = lambda text, s, e: not rank_before(text, s)
    # a street named inside one word ("Koskikatu", "Hauptstrasse") is capitalised or numbered:
    # "a fistulaan abnormal passage" ends in "-laan" by a missing space
    validators["street_word"] = lambda text, s, e: text[s].isupper() or text[s].isdigit()
    # a town is no stop word ("... bile ducts. However, CT scans")
    validators["town_word"] = lambda text, s, e: text[s:e].split()[0].lower() not in stop
    # a year after a preposition is a time, no postcode ("clotting factor before 1987")
    # a month and a year ("In January 2008"), not a town and its postcode
    validators["not_month_year"] = lambda text, s, e: not month_year(text, s, e)
    validators["not_year"] = lambda text, s, e: not (
        re.fullmatch(r"(?:19|20)\d\d", text[s:e])
        and re.search(r"(?i)\b(?:before|after|since|in|until|till|from|of|by|to|during|around|circa)\s*$",
                      text[max(0, s - 12):s]))
    validators["not_et_al"] = lambda text, s, e: not et_al_before(text, s)

    class GroupPatternRecognizer(pa.LocalRecognizer):
        """A regex recognizer whose finding is the ``phi`` group when there is one
        (Presidio's PatternRecognizer always takes the whole match, label included)."""

        def __init__(self, name: str, entity: str, regex: str, score: float,
                     validator: str | None, context: list[str] | None = None) -> None:
            self.regex = re.compile(guarded(regex, re.MULTILINE), re.MULTILINE)
            self.score = score
            self.validator = validators[validator] if validator else None
            # a pattern with context words scores below the threshold alone and passes
            # only when Presidio's context enhancer finds one of them just before it
            super().__init__(supported_entities=[entity], name=name, supported_language="en",
                             context=context)

        def load(self) -> None:
            pass

        def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list:
            entity = self.supported_entities[0]
            out = []
            for m in self.regex.finditer(text):
                start, end = m.span("phi") if "phi" in self.regex.groupindex else m.span()
                if end <= start or (self.validator and not self.validator(text, start, end)):
                    continue
                out.append(_result(pa, self, entity, start, end, self.score))
            return out

    fragments = {k: expand(v, cfg["fragments"]) for k, v in cfg["fragments"].items()}
    return [GroupPatternRecognizer(p["name"], p["type"], expand(p["regex"], fragments),
                                   float(p["score"]), p.get("validator"), p.get("context"))
            for p in cfg["patterns"]]


class EnglishWords:
    """Common English words: the WordNet-derived lemma index that the spaCy model ships for
    its lemmatizer, with its inflection rules ("pleasures" -> "pleasure"). A word outside it
    that the tagger calls a proper noun is most likely a name."""

    def __init__(self, lookups: Any) -> None:
        index = lookups.get_table("lemma_index")
        self.words = frozenset(w for pos in index.values() for w in pos)
        self.irregular = frozenset(w for pos in lookups.get_table("lemma_exc").values() for w in pos)
        self.rules = tuple({(old, new) for pos in lookups.get_table("lemma_rules").values()
                            for old, new in pos if old})

    def __contains__(self, word: str) -> bool:
        w = word.lower()
        if w in self.words or w in self.irregular:
            return True
        return any(w.endswith(old) and w[: len(w) - len(old)] + new in self.words
                   for old, new in self.rules)


def _split_at_punct(span: Any) -> list[list[Any]]:
    """An entity's tokens in the pieces its punctuation separates ("Laax, Environmental
    Data Resources" -> "Laax" | "Environmental Data Resources")."""
    parts: list[list[Any]] = [[]]
    for t in span:
        if t.is_punct and t.text != "-":
            parts.append([])
        else:
            parts[-1].append(t)
    return [p for p in parts if p]


@functools.cache
def english_words(lemmatizer: Any) -> EnglishWords:
    return EnglishWords(lemmatizer.lookups)


def _may_hold_name(text: str, words: EnglishWords) -> bool:
    """Whether a text has a capitalised word outside the dictionary, shaped like a name
    (what a proper-noun candidate needs)."""
    return any(w[0].isupper() and _name_shaped(w) and w not in words
               for w in _ALPHA_RUN.findall(text))


def _proper_noun_recognizer(pa: Any, conf: dict[str, Any], words: EnglishWords,
                            followers: frozenset[str]) -> Any:
    """NAME candidates from the tagger: runs of proper nouns that NER missed, holding at
    least one word that is not a common English word ("Yefremova", not "Personal Info")."""
    tags = frozenset(conf["tags"])
    not_names = frozenset(conf["not_names"])
    places = frozenset(conf["places"])  # NER labels that make a candidate a LOCATION
    people_words = frozenset(conf["people_words"])
    score = float(conf["score"])

    def unknown(tok: Any) -> bool:
        """Not a common word, and shaped like a name: one capital, or one per part
        ("McDowell"); "UTIs", "RotaTeq" are abbreviations and brands."""
        t = tok.text.strip(".")
        return len(t) > 1 and t.isalpha() and _name_shaped(t) and t not in words

    def joins(doc: Any, tok: Any) -> bool:
        """A particle or an unspaced hyphen between two proper nouns ("Ludwig van
        Beethoven", "Klippel-Trenaunay")."""
        nxt = doc[tok.i + 1] if tok.i + 1 < len(doc) else None
        if nxt is None or nxt.tag_ not in tags:
            return False
        return tok.lower_ in _PARTICLES or (tok.text == "-" and not tok.whitespace_
                                             and not doc[tok.i - 1].whitespace_)

    def term_like(text: str, start: int, end: int, n_tokens: int) -> bool:
        before = text[:start]
        # a lone capitalised word at a sentence start or after a bullet is as often a term
        # ("Pentamidine is ...", "- Radiofrequency ablation") as a name
        # unless it is spoken to or speaks ("Warrane, can I ...", "Ubul: What a wife.")
        if n_tokens == 1 and _SENTENCE_START.search(before) and not (
                _ADDRESSED.match(text, end) and not _DEFINED_ITEM.search(text, max(0, start - 3), end + 12)):
            return True
        # a brand beside its generic name: "metformin (Glucophage)", "Elmiron (pentosan)"
        m = _PAREN_AFTER_WORD.search(before)
        if m and (m.group(1).islower() or _abbreviation_like(m.group(1))) and m.group(1) not in people_words:
            return True
        return bool(_PAREN_LOWER_AFTER.match(text, end))

    class ProperNounRecognizer(pa.LocalRecognizer):
        def load(self) -> None:
            pass

        def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list:
            doc = getattr(nlp_artifacts, "tokens", None)
            if doc is None or not doc.has_annotation("TAG"):
                return []
            tag_ids = {doc.vocab.strings.add(t) for t in tags}
            proper = [i for i, h in enumerate(doc.to_array("TAG").tolist()) if h in tag_ids]
            if not proper:
                return []
            ents = doc.ents
            # an ORG (FAC, PRODUCT ...) of unknown words only is as often people ("Kónya,
            # Becker and Vasquez"); one with a common word is not ("Entertainment Weekly")
            other = {t.i for ent in ents if ent.label_ in not_names
                     for part in _split_at_punct(ent)
                     if not all(unknown(t) for t in part if t.tag_ in tags and len(t.text) > 2)
                     for t in part}
            place = {i for ent in ents if ent.label_ in places
                     for i in range(ent.start, ent.end)}
            out: list[Any] = []

            def flush(run: list[Any]) -> None:
                if run and any(unknown(t) for t in run):
                    start, end = run[0].idx, run[-1].idx + len(run[-1].text)
                    if not term_like(text, start, end, len(run)):
                        entity = "LOCATION" if any(t.i in place for t in run) else "PERSON"
                        out.append(_result(pa, self, entity, start, end, score))

            # only the proper nouns become Token objects (one per token is most of the cost)
            run: list[Any] = []
            for i in proper:
                tok = doc[i]
                if i in other or not tok.text[:1].isupper() or tok.lower_ in followers:
                    continue
                if run:
                    # a run goes on over particles and unspaced hyphens ("Ludwig van Beethoven")
                    gap = range(run[-1].i + 1, i)
                    if len(gap) <= 3 and all(joins(doc, doc[j]) for j in gap):
                        run += [doc[j] for j in gap]
                        run.append(tok)
                        continue
                    flush(run)
                run = [tok]
            flush(run)
            return out

    return ProperNounRecognizer(supported_entities=["PERSON", "LOCATION"], name="proper_noun",
                                supported_language="en")


def build_analyzer(cfg: dict[str, Any] | None = None, *, score_threshold: float = 0.5,
                   name_model: str | None = "rampart") -> Any:
    """A Presidio ``AnalyzerEngine`` on the lean spaCy model with the project's recognizers."""
    cfg = cfg or load_recognizer_config()
    pa = require("presidio_analyzer", "anonymize", "PHI detection")
    require("spacy", "anonymize", "PHI detection")
    from presidio_analyzer import predefined_recognizers as pr
    from presidio_analyzer.nlp_engine import NerModelConfiguration, NlpArtifacts, SpacyNlpEngine

    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
    configure_tldextract_offline()
    scfg = cfg["spacy"]

    class LeanSpacyNlpEngine(SpacyNlpEngine):
        """spaCy with only the NER component; lower-cased tokens stand in for lemmas
        (Presidio uses lemmas only to find context words)."""

        #: text -> whether the tagger must run on it (None: always)
        needs_tags: Any = None
        #: text -> the (offset, piece) runs of its sentences that NER must read (None: all of it)
        ner_pieces: Any = None

        def load(self) -> None:
            self.nlp = {"en": _load_spacy(scfg["model"], tuple(scfg["exclude"]))}

        def process_batch(self, texts: Any, language: str, batch_size: int = 1,
                          n_process: int = 1, as_tuples: bool = False) -> Any:
            """NER reads only the sentences of a text that may hold a name or place
            (``ner_pieces``; consecutive ones together): most sentences of reports and public
            text have none ("The heart is normal in size.", "XXXX"), and NER is the
            detector's largest cost (bench/anonymize.py). The tagger reads only the pieces
            that may hold a proper-noun candidate (a capitalised word outside the
            dictionary). A text with no piece, or no letter (a record id, a date, a phone
            number), is only tokenized: every model finding needs a capitalised word, and
            the tokens, which the context words are read from, are the tokenizer's either
            way. What the pieces' models found is set on the whole text's tokens."""
            if as_tuples:
                yield from super().process_batch(texts, language, batch_size, n_process, as_tuples)
                return
            texts = list(map(str, texts))
            tagged: list[tuple[int, int, str]] = []  # (text's index, offset, piece)
            plain: list[tuple[int, int, str]] = []
            for i, t in enumerate(texts):
                if not any(c.isalpha() for c in t):
                    continue
                for off, piece in (self.ner_pieces(t) if self.ner_pieces is not None else [(0, t)]):
                    group = tagged if self.needs_tags is None or self.needs_tags(piece) else plain
                    group.append((i, off, piece))
            nlp = self.nlp[language]
            read: dict[int, list[tuple[int, Any]]] = {}
            whole: dict[int, Any] = {}  # text's index -> its doc, when one piece was all of it
            for group, off in ((tagged, []), (plain, ["tok2vec", "tagger"])):
                if group:
                    docs = nlp.pipe([p for _, _, p in group], batch_size=batch_size,
                                    n_process=n_process, disable=off)
                    for (i, offset, piece), doc in zip(group, docs):
                        read.setdefault(i, []).append((offset, doc))
                        if piece == texts[i]:
                            whole[i] = doc
            for i, t in enumerate(texts):
                parts = read.get(i, [])
                if i in whole:
                    doc = whole[i]  # the whole text was read
                else:
                    doc = nlp.make_doc(t)
                    if parts:  # the tagged pieces were read first: put them in text order
                        _annotate(doc, sorted(parts, key=lambda part: part[0]))
                yield t, self._doc_to_nlp_artifact(doc, language)

        def _doc_to_nlp_artifact(self, doc: Any, language: str) -> Any:
            entities, scores = self._get_updated_entities(
                list(doc.ents), [self.ner_model_configuration.default_score] * len(doc.ents))
            indices, lowers, keywords = [], [], []
            for t in doc:  # one pass: each Token is a new object
                indices.append(t.idx)
                lower = t.lower_
                lowers.append(lower)
                if t.is_alpha:
                    keywords.append(lower)
            # no engine here: NlpArtifacts would look every lemma up in the vocabulary for
            # its own keywords (adding each unseen word to it), which are replaced below
            art = NlpArtifacts(entities=entities, tokens=doc, tokens_indices=indices,
                               lemmas=lowers, nlp_engine=None, language=language, scores=scores)
            art.nlp_engine = self
            # context words may be stop words ("call me on ..."): keep every word
            art.keywords = keywords
            return art

    labels = dict(scfg["labels"])
    ner_conf = NerModelConfiguration(
        model_to_presidio_entity_mapping=labels,
        labels_to_ignore=["DATE", "TIME", "ORG", "NORP", "FAC", "CARDINAL", "ORDINAL",
                          "QUANTITY", "PERCENT", "MONEY", "PRODUCT", "EVENT", "WORK_OF_ART",
                          "LAW", "LANGUAGE"],
        low_score_entity_names=[], default_score=float(scfg.get("score", 0.85)))
    nlp_engine = LeanSpacyNlpEngine(models=[{"lang_code": "en", "model_name": scfg["model"]}],
                                    ner_model_configuration=ner_conf)
    nlp_engine.load()

    registry = pa.RecognizerRegistry(supported_languages=["en"])
    registry.add_recognizer(pr.SpacyRecognizer(supported_entities=sorted(set(labels.values())),
                                               ner_strength=float(scfg.get("score", 0.85))))
    for cls_name in cfg["presidio"]:
        if cls_name == "PhoneRecognizer":
            # libphonenumber, tried as a number of each listed region (international formats)
            rec = pr.PhoneRecognizer(supported_regions=tuple(cfg["phone_regions"]))
        else:
            rec = getattr(pr, cls_name)()
        if cls_name in STOCK_NEEDS:
            _only_when(rec, STOCK_NEEDS[cls_name])
        registry.add_recognizer(rec)
    words = english_words(nlp_engine.nlp["en"].get_pipe("lemmatizer"))
    for rec in _make_recognizers(cfg, words, frozenset(nlp_engine.nlp["en"].Defaults.stop_words)):
        registry.add_recognizer(rec)
    from instructkit.steps.anonymize.names import name_lists

    lists = name_lists(int((cfg.get("lowercase_names") or {}).get("min_births", 20)),
                       int((cfg.get("eponyms") or {}).get("common_births", 1000)))
    given = lists.given
    registry.add_recognizer(make_gazetteer_recognizer(pa, cfg, _result, words, given))
    if cfg.get("name_context") is not None:
        from instructkit.steps.anonymize.name_context import make_name_context_recognizers

        not_surname = frozenset(w.lower() for w in cfg.get("generic_facility_words", []))
        for rec in make_name_context_recognizers(
                pa, {**(cfg["name_context"] or {}), "street_suffix": cfg["fragments"]["STREET_SUFFIX"]},
                lists, lambda w: w in words,
                frozenset(nlp_engine.nlp["en"].Defaults.stop_words), _result, not_surname):
            registry.add_recognizer(rec)
    if name_model == "rampart":
        from instructkit.steps.anonymize.name_model import make_rampart_recognizer

        registry.add_recognizer(make_rampart_recognizer(pa, _result))
    elif name_model:
        raise ValueError(f"unknown name_model {name_model!r}; choose rampart or none")
    if cfg.get("lowercase_names"):
        from instructkit.steps.anonymize.names import make_lowercase_name_recognizer

        stop = frozenset(nlp_engine.nlp["en"].Defaults.stop_words)
        registry.add_recognizer(make_lowercase_name_recognizer(
            pa, cfg["lowercase_names"], lambda w: w in stop, _result))
    if scfg.get("proper_nouns"):
        nlp_engine.needs_tags = functools.partial(_may_hold_name, words=words)
        followers = plural_forms(cfg["deny"]["eponym_followers"])
        registry.add_recognizer(_proper_noun_recognizer(pa, scfg["proper_nouns"], words, followers))
    # context words count a little after a value too ("085 175 7641-Office"), and as whole
    # words only ("tel" must not match "platelets")
    engine_class, enhancer_class = _lean_engine_classes(pa)
    enhancer = enhancer_class(context_suffix_count=2, context_matching_mode="whole_word")
    return engine_class(registry=registry, nlp_engine=nlp_engine, supported_languages=["en"],
                        default_score_threshold=score_threshold, context_aware_enhancer=enhancer)


@functools.cache
def _lean_engine_classes(pa: Any) -> tuple[type, type]:
    """Presidio's ``AnalyzerEngine`` and ``LemmaContextAwareEnhancer`` with the same results
    and less work per text (tests/test_anonymize_engine.py holds them to the stock
    classes):

    * the engine lists its supported entities once, not on every call;
    * its context step hands each recognizer its own results by one grouping pass instead
      of two scans of all results per recognizer (80 recognizers), and skips recognizers
      that keep the base class's ``enhance_using_context``, which returns them unchanged;
    * the enhancer deep-copies and reads around only the results whose recognizer has
      context words (the others it would return as they are), keeping their order.
    """
    from presidio_analyzer import EntityRecognizer, RecognizerResult

    rid = RecognizerResult.RECOGNIZER_IDENTIFIER_KEY
    plain_context = EntityRecognizer.enhance_using_context

    class LeanAnalyzerEngine(pa.AnalyzerEngine):
        _entities_cache: dict[tuple[str | None, int], list[str]]

        def get_supported_entities(self, language: str | None = None) -> list[str]:
            cache = self.__dict__.setdefault("_entities_cache", {})
            key = (language, len(self.registry.recognizers))
            if key not in cache:
                cache[key] = super().get_supported_entities(language)
            return list(cache[key])

        def _enhance_using_context(self, text: str, raw_results: list, nlp_artifacts: Any,
                                   recognizers: list, context: list[str] | None = None) -> list:
            by_id: dict[str, list] = {}
            for r in raw_results:
                by_id.setdefault(r.recognition_metadata[rid], []).append(r)
            results: list = []
            for recognizer in recognizers:
                key = recognizer.id
                own = by_id.get(key, [])
                if type(recognizer).enhance_using_context is not plain_context:
                    own = recognizer.enhance_using_context(
                        text=text, raw_recognizer_results=own,
                        other_raw_recognizer_results=[r for r in raw_results
                                                      if r.recognition_metadata[rid] != key],
                        nlp_artifacts=nlp_artifacts, context=context)
                results.extend(own)
            return self.context_aware_enhancer.enhance_using_context(
                text=text, raw_results=results, nlp_artifacts=nlp_artifacts,
                recognizers=recognizers, context=context)

    class LeanContextEnhancer(pa.context_aware_enhancers.LemmaContextAwareEnhancer):
        def enhance_using_context(self, text: str, raw_results: list, nlp_artifacts: Any,
                                  recognizers: list, context: list[str] | None = None) -> list:
            with_context = {r.id for r in recognizers if r.context}
            todo = [i for i, r in enumerate(raw_results)
                    if (r.recognition_metadata or {}).get(rid) in with_context]
            if not todo:
                return list(raw_results)
            done = super().enhance_using_context(text, [raw_results[i] for i in todo],
                                                 nlp_artifacts, recognizers, context)
            out = list(raw_results)
            for i, r in zip(todo, done):
                out[i] = r
            return out

    return LeanAnalyzerEngine, LeanContextEnhancer


#: a letter that cannot stand in a phone number libphonenumber matches (its candidates are
#: digits and punctuation, where "x" and "\u30fc" count as punctuation)
_NOT_IN_PHONE = re.compile("[^\\W\\d_xX\u30fc]+")
#: every pattern of Presidio's URL recognizer ends in "." and a top-level domain
_DOT_LETTER = re.compile(r"\.[^\W\d_]")
#: IPv4 needs digits around a dot; every IPv6 pattern needs a colon
_DIGIT_DOT_DIGIT = re.compile(r"[0-9]\.[0-9]")


def _phone_candidate(text: str, digits: int = 7) -> bool:
    """Whether a stretch of ``text`` without letters holds ``digits`` digits: a phone number
    has 7 at least (libphonenumber's shortest valid US or GB number; an international one
    with its country code), all in one such stretch."""
    return any(sum(c.isdigit() for c in part) >= digits for part in _NOT_IN_PHONE.split(text))


#: what a text must hold for a stock Presidio recognizer to find anything in it, read off
#: its patterns (a necessary condition, cheaper than the recognizer); a text without it is
#: not given to the recognizer. tests/test_anonymize_engine.py holds each to its recognizer.
STOCK_NEEDS: dict[str, Callable[[str], bool]] = {
    # libphonenumber's matcher is the slowest recognizer
    "PhoneRecognizer": _phone_candidate,
    "UrlRecognizer": lambda text: _DOT_LETTER.search(text) is not None,
    "IpRecognizer": lambda text: ":" in text or _DIGIT_DOT_DIGIT.search(text) is not None,
    "EmailRecognizer": lambda text: "@" in text,
}


def _only_when(recognizer: Any, needs: Callable[[str], bool]) -> None:
    """Ask ``recognizer`` only about texts that hold what any of its findings needs."""
    analyze = recognizer.analyze

    def gated(text: str, entities: Any, nlp_artifacts: Any = None, *a: Any, **k: Any) -> Any:
        if not needs(text):
            return []
        return analyze(text, entities, nlp_artifacts, *a, **k)

    recognizer.analyze = gated


def _annotate(doc: Any, parts: list[tuple[int, Any]]) -> None:
    """Set what spaCy found in pieces of a text (each read alone; ``(offset, doc)``) on the
    whole text's ``doc``: entities and part-of-speech tags. Pieces start and end at white
    space, so their tokens are the whole text's."""
    at = {t.idx: t.i for t in doc}
    tags: list[int] | None = None
    ents = []
    for off, part in parts:
        if part.has_annotation("TAG"):
            tags = tags or [0] * len(doc)
            for t in part:
                j = at.get(off + t.idx)
                if j is not None:
                    tags[j] = t.tag
        for e in part.ents:
            span = doc.char_span(off + e.start_char, off + e.end_char, label=e.label_, alignment_mode="expand")
            if span is not None and (not ents or span.start >= ents[-1].end):
                ents.append(span)
    if tags is not None:
        import numpy

        doc.from_array(["TAG"], numpy.array(tags, dtype="uint64").reshape(-1, 1))
    doc.ents = ents


@functools.cache
def _load_spacy(model: str, exclude: tuple[str, ...]) -> Any:
    """spaCy model by package name (installed from PyPI, never downloaded at run time)."""
    spacy = require("spacy", "anonymize", "PHI detection")
    if not spacy.util.is_package(model):
        from instructkit._exceptions import MissingExtraError

        raise MissingExtraError("anonymize", model.replace("_", "-"), "the spaCy model")
    # the lemmatizer is loaded (its word lists tell common words from names), not run
    return spacy.load(model, exclude=list(exclude), disable=["lemmatizer"])


class PhiDetector:
    """Finds PHI spans in texts (batched), typed with the project's types."""

    def __init__(self, *, entities: Iterable[str] | None = None, score_threshold: float = 0.5,
                 n_process: int = 1, batch_size: int = 32, keep_states_and_countries: bool = True,
                 extra_deny: Iterable[str] = (), name_model: str | None = "rampart") -> None:
        self.cfg = load_recognizer_config()
        self.entities = frozenset(entities) if entities else frozenset(PHI_TYPES)
        unknown = self.entities - set(PHI_TYPES)
        if unknown:
            raise ValueError(f"unknown PHI types {sorted(unknown)}; known: {list(PHI_TYPES)}")
        self.score_threshold = score_threshold
        self.n_process = max(1, int(n_process))
        self.batch_size = batch_size
        self.analyzer = build_analyzer(self.cfg, score_threshold=score_threshold, name_model=name_model)
        #: the optional second name model's CC BY credit (the card prints it when it ran)
        self.name_model_credit = None
        if name_model:
            from instructkit.steps.anonymize.name_model import RAMPART_CREDIT

            self.name_model_credit = RAMPART_CREDIT
        self.nlp_engine = self.analyzer.nlp_engine
        #: the name model's tagger (read a batch of texts at a time), if one runs
        self.name_recognizer = next((r for r in self.analyzer.registry.recognizers if r.name == "rampart"), None)
        if self.name_recognizer is not None:
            # the name model reads after the other recognizers (``detect_many``): a sentence
            # whose name candidates they found needs no second reading
            self.analyzer.registry.remove_recognizer("rampart")
        self.name_tagger = getattr(self.name_recognizer, "tagger", None)
        self.english_words = english_words(self.nlp_engine.nlp["en"].get_pipe("lemmatizer"))
        from instructkit.steps.anonymize.names import name_lists

        # SSA given names and Census surnames: a common word that is also a name stays a
        # candidate ("David is ...", "Walker began ..."); never a match on their own
        self.stop_words = frozenset(self.nlp_engine.nlp["en"].Defaults.stop_words)
        self.people_words = frozenset(self.cfg["spacy"]["proper_nouns"]["people_words"])
        self.names = name_lists(int((self.cfg.get("lowercase_names") or {}).get("min_births", 20)),
                                int((self.cfg.get("eponyms") or {}).get("common_births", 1000)))
        self.type_of = dict(self.cfg["entity_types"])
        self.priority = {t: i for i, t in enumerate(self.cfg["priority"])}
        self.masks = re.compile("|".join(f"(?:{m})" for m in self.cfg["masks"]))
        deny = self.cfg["deny"]
        self.deny_terms = frozenset(_norm(t) for t in [*deny["terms"], *deny.get("not_names", []),
                                                        *extra_deny])
        self.deny_types = frozenset(self.cfg["deny_checked_types"])
        followers = "|".join(re.escape(w) for w in sorted(plural_forms(deny["eponym_followers"]),
                                                          key=len, reverse=True))
        # a second eponym may be joined by a hyphen ("Kasabach-Merritt phenomenon")
        self.eponym_after = re.compile(rf"^(?:'s|\u2019s|s'|'|\u2019)?(?:-[A-Z][\w'\u2019]*)*[\s-]*(?:{followers})\b",
                                       re.IGNORECASE)
        leaders = "|".join(re.escape(w) for w in deny["eponym_leaders"])
        of_words = "|".join(re.escape(w) for w in deny["eponym_of"])
        self.eponym_before = re.compile(rf"(?<!\w)(?:(?:{leaders})[\s-]*|(?:{of_words})\s+of\s+)$",
                                        re.IGNORECASE)
        # words that are not names although spaCy often tags them so (clinical vocabulary,
        # pronouns, greetings' objects); and the shape of medical terms ("-itis", "-omegaly")
        self.not_name_words = frozenset(_norm(t) for t in deny.get("not_names", []))
        self.medical_word = re.compile(rf"(?i)^(?:{'|'.join(deny['medical_word_shapes'])})$")
        eps = self.cfg.get("eponyms") or {}
        self.eponyms = Eponyms(deny["eponym_followers"], medical_word=self.medical_word,
                               common=lambda w: w in self.english_words, stop_words=self.stop_words,
                               given_names=self.names.common_given,
                               max_modifiers=int(eps.get("max_modifiers", 2)))
        word = expand("{{NAME_WORD}}", self.cfg["fragments"])
        member = rf"{word}(?:\s+(?:[A-Z]\.?\s+)?{word})?"
        self.list_member = re.compile(member)
        # two or more capitalised names joined by commas, "and", "&" or "or"
        self.name_list = re.compile(rf"(?<![\w-]){member}(?:(?:\s*,\s*(?:and\s+|&\s*)?|\s+(?:and|&|or)\s+){member})+(?![\w-])")
        self.address_part = re.compile(expand(self.cfg["address_block"]["part"],
                                              {k: expand(v, self.cfg["fragments"])
                                               for k, v in self.cfg["fragments"].items()}))
        #: states and countries as written, and normalised
        self._kept_place_words = tuple(self.cfg["safe_harbor_places"]) if keep_states_and_countries else ()
        self.kept_places = frozenset(_norm(p) for p in self._kept_place_words)
        self.product_kinds = plural_forms(self.cfg["spacy"]["proper_nouns"].get("product_words") or ["drug"])
        products = "|".join(re.escape(w) for w in sorted(self.product_kinds, key=len, reverse=True))
        item = r"[A-Z][\w'\u2019-]*(?:[ \t]+[A-Z][\w'\u2019-]*)?(?:[ \t]*\([^()\n]{1,40}\))?"
        #: a brand listed after its kind: "laxatives, such as Citrucel and <here>"
        self.product_list_before = re.compile(
            rf"(?i:\b(?:{products})\b)[ \t]*,?[ \t]*(?i:such[ \t]+as|like|including|includes?|e\.g\.,?|for[ \t]+example,?)"
            rf"[ \t]+(?:{item}(?:[ \t]*,[ \t]*(?:(?:and|or)[ \t]+)?|,?[ \t]+(?:and|or)[ \t]+))*$")
        heads = "|".join(re.escape(w) for w in sorted(plural_forms(deny.get("condition_heads") or ()),
                                                      key=len, reverse=True)) or "(?!)"
        self.condition_head = re.compile(rf"(?i:{heads})")
        #: facility kinds: a town in parentheses after one is the facility's ("Barnes Clinic (Ginastad, FL)")
        self.facility_words = frozenset(w.lower() for w in self.cfg.get("generic_facility_words", []))
        #: the last word of an institution's name
        self.org_head = re.compile(r"Institutes?|Foundation|Association|Society|Academy|University|College|"
                                   r"Agency|Administration|Council|Federation|Alliance|Coalition|Program|Programme|"
                                   r"Pharma|Pharmaceuticals?|Laboratories|Inc|Corp|Corporation|Ltd|GmbH|Partnership")
        #: a street's kind, in English or another language ("St.", "Rue", "-strasse")
        frag = self.cfg["fragments"]
        self.street_word = re.compile(
            rf"(?<![\w.])(?:{frag['STREET_SUFFIX']}|{frag['STREET_PREFIX_INTL']})(?![\w])|{frag['STREET_SUFFIX_INTL']}\b")
        #: research prose (a cohort, no individual): its names, places, dates are not PHI
        self.prose_scope = ProseScope(self.cfg.get("research_prose"))
        #: references, credits, publication dates, organisations' listings
        self.public_lines = PublicLines()
        if self.name_tagger is not None:
            self.name_tagger.worth = self._worth_tagging
        self.nlp_engine.ner_pieces = self._ner_pieces
        #: sentence -> its name candidates' spans (``_candidate_spans``); in memory only
        self._candidates_seen: dict[str, tuple[tuple[int, int], ...]] = {}

    def _ner_pieces(self, text: str) -> list[tuple[int, str]]:
        """The (offset, piece) runs of a text's sentences that spaCy's NER should read: a
        sentence with a word the name model would read (``_worth_tagging``), a capitalised
        word after its first one (a place that is also a word: "moved to Mobile") or a first
        word that is a common given name ("Cora, can I ..."). Consecutive ones are read
        together with the sentences before and after them (NER reads a word's neighbours:
        "... on this list? Marrero and Murphy were ...")."""
        pieces = list(sentences(text))
        runs: list[list[int]] = []
        for i, (off, s) in enumerate(pieces):
            if self._capitalised_name_word(s) or self._worth_tagging(s):
                start = pieces[max(0, i - 1)][0]
                end = pieces[min(len(pieces) - 1, i + 1)]
                end_at = end[0] + len(end[1])
                if runs and start <= runs[-1][1]:
                    runs[-1][1] = max(runs[-1][1], end_at)
                else:
                    runs.append([start, end_at])
        return [(a, text[a:b]) for a, b in runs]

    def _capitalised_name_word(self, sentence: str) -> bool:
        runs = _ALPHA_RUN.findall(sentence)
        if runs and runs[0][0].isupper() and runs[0].lower() in self.names.common_given:
            return True
        return any(w[0].isupper() and not (w.isupper() and len(w) <= 4) and not self.masks.fullmatch(w)
                   for w in runs[1:])

    def forget(self) -> None:
        """Empty what the detector remembers of the sentences it read (their name candidates,
        the name model's spans): the next texts are read afresh."""
        self._candidates_seen.clear()
        if self.name_tagger is not None:
            self.name_tagger.forget()

    def _worth_tagging(self, sentence: str, covered: Sequence[tuple[int, int]] = ()) -> bool:
        """Whether the name model should read a sentence: it has a name candidate that is no
        clinical term and that spaCy's entities (``covered``, sentence offsets) do not hold
        already."""
        return any(not any(s <= a and b <= e for s, e in covered) for a, b in self._candidate_spans(sentence))

    def _candidate_spans(self, sentence: str) -> tuple[tuple[int, int], ...]:
        """The spans of a sentence's name candidates that are no clinical term, eponym or
        label. Remembered in memory for a while: NER's sentence choice and the name model
        both ask about each sentence."""
        hit = self._candidates_seen.get(sentence)
        if hit is not None:
            return hit
        out = []
        for m in name_candidates(sentence, self.english_words, self.names.given,
                                 self.names.common_given, self.names.surnames, self.stop_words):
            w = m.group()
            if self.is_medicine_word(w) or self.medical_word.match(w):
                continue
            if self.eponym_after.match(sentence, m.end()):
                continue  # an eponym's ("Huntington's disease", "Ewing sarcoma")
            if _LABEL_VALUE_AFTER.match(sentence, m.end()) and (w.isupper() and len(w) <= 4 or w in self.english_words):
                continue  # a label before its value ("MRN: 35058942", "Accession #CT2596")
            out.append(m.span())
        if len(self._candidates_seen) >= 20_000:
            self._candidates_seen.clear()
        self._candidates_seen[sentence] = found = tuple(out)
        return found

    def scope_of(self, text: str) -> str:
        """``"research"`` for research prose about a cohort with no individual in it (its
        names, places, facilities, dates and ages are no individual's), else ``"general"``."""
        return self.prose_scope.of(text)

    # -- detection ---------------------------------------------------------------------------
    def detect(self, text: str) -> list[Finding]:
        return self.detect_many([text])[0]

    def detect_many(self, texts: Sequence[str],
                    scopes: Sequence[str | None] | None = None,
                    contexts: Sequence[str | None] | None = None, *,
                    stats: Counter[str] | None = None) -> list[list[Finding]]:
        """Findings for each text, read on its normalised form (``normalize``: encodings,
        invisible characters, split identifiers) and mapped back to its own offsets; a finding
        in a decoded base64 run covers the whole run. ``stats`` counts each transform that
        fired."""
        norms = [normalize(t, name_pair=self._name_pair) if isinstance(t, str) and t else None for t in texts]
        if not any(n is not None and n.changed for n in norms):
            return self._detect_normalised(texts, scopes, contexts)
        if contexts is not None:
            contexts = [normalize(c).text if c else c for c in contexts]
        found = self._detect_normalised([n.text if n is not None else t for n, t in zip(norms, texts)],
                                        scopes, contexts)
        for n in norms:
            if n is not None and stats is not None:
                stats.update(n.fired)
        return [remap_findings(n, f, self.priority) if n is not None else f for n, f in zip(norms, found)]

    def _name_pair(self, given: str, surname: str) -> bool:
        """A common given name and a Census surname that is no English word: one person's name
        across a line break (``normalize``'s ``split_identifier``)."""
        return (given.lower() in self.names.common_given and surname.lower() in self.names.surnames
                and surname not in self.english_words and not self.is_medicine_word(surname))

    def _detect_normalised(self, texts: Sequence[str],
                           scopes: Sequence[str | None] | None = None,
                           contexts: Sequence[str | None] | None = None) -> list[list[Finding]]:
        """Findings for each text; identical texts are analysed once. ``scopes`` (one per
        text, see ``scope_of``) says what kind of prose a text is; by default each text's
        own (the anonymize step passes its record's). ``contexts`` (one per text) are the
        other texts of its record: a capitalised word that stands in lower case there is a
        common noun capitalised by its place ("What causes Cystocele?" in a record whose
        answer says "a cystocele ...")."""
        scopes = list(scopes) if scopes is not None else [None] * len(texts)
        contexts = list(contexts) if contexts is not None else [None] * len(texts)
        keys = [(t, s or self.scope_of(t), c or "") if t and _worth_analysing(t) else None
                for t, s, c in zip(texts, scopes, contexts)]
        wanted = {k[0]: None for k in keys if k}
        analysed: dict[str, tuple[list[Any], Any]] = {}
        if wanted:
            batches = self.nlp_engine.process_batch(list(wanted), language="en",
                                                    batch_size=self.batch_size,
                                                    n_process=self.n_process)
            # the name model reads general texts only (research prose names no individual)
            general = {k[0] for k in keys if k and k[1] == GENERAL} if self.name_tagger else set()
            unread: list[tuple[str, list[tuple[int, int]]]] = []
            for text, artifacts in batches:
                raw = self.analyzer.analyze(text=text, language="en", nlp_artifacts=artifacts,
                                            score_threshold=self.score_threshold)
                analysed[text] = (raw, getattr(artifacts, "tokens", None))
                if text in general:
                    # what the patterns found (a statistical model's guess may still be dropped)
                    unread.append((text, entity_spans(artifacts) + [
                        (r.start, r.end) for r in raw
                        if (r.recognition_metadata or {}).get("recognizer_name") not in _MODEL_RECOGNIZERS]))
            if unread:  # the pieces of the whole batch are read together
                for (text, _), found in zip(unread, self.name_recognizer.results_many(unread)):
                    analysed[text][0].extend(found)
        found: dict[tuple[str, str], list[Finding]] = {}
        results: dict[tuple[str, str, str], list[Finding]] = {}
        for k in keys:
            if k and k not in results:
                if (k[0], k[2]) not in found:
                    found[k[0], k[2]] = self._clean(k[0], *analysed[k[0]], context=k[2])
                results[k] = self._in_scope(k[0], found[k[0], k[2]], k[1])
        return [results[k] if k else [] for k in keys]

    def _in_scope(self, text: str, found: list[Finding], scope: str) -> list[Finding]:
        """The findings that are PHI in a text of ``scope``: in research prose no names,
        places, dates; the name repeats and lists built on a dropped name go with it."""
        if scope == GENERAL:
            return found
        return [f for f in found if self.prose_scope.is_phi(scope, f.type)]

    def _clean(self, text: str, raw: list[Any], doc: Any = None, context: str = "") -> list[Finding]:
        masked = [m.span() for m in self.masks.finditer(text)]
        # peoples and nationalities (NER's NORP): a list is of one kind, so a name-like item
        # listed with them is a group too ("African Americans, Alaska Natives, American Indians")
        groups = [(e.start_char, e.end_char) for e in doc.ents if e.label_ == "NORP"] \
            if doc is not None and doc.has_annotation("ENT_IOB") else []
        found: list[Finding] = []
        markers: set[str] | None = None  # letters of a lettered list, found when needed
        acronyms = _defined_acronyms(text) if "(" in text else frozenset()
        asked: frozenset[str] | None = None  # terms the record asks about, found when needed
        for r in raw:
            typ = self.type_of.get(r.entity_type, r.entity_type)
            if typ not in self.entities:
                continue
            start, end = _trim(text, r.start, r.end)
            if end <= start:
                continue
            name = (r.recognition_metadata or {}).get("recognizer_name", "")
            ner = name in _MODEL_RECOGNIZERS
            if name == "rampart":
                if not self._plausible_tagged(text, start, end, typ, markers):
                    continue
                # a capitalised name or place from the name model passes spaCy's checks too
                # (medical text has capitalised terms the model takes for names)
                ner = typ in ("NAME", "LOCATION") and any(c.isupper() for c in text[start:end])
            if ner and "\n" in text[start:end]:
                # a model's span runs over a line break ("Zizi Kónya\nEnigmaio"): the first line
                cut = text.index("\n", start)
                start, end = _trim(text, start, cut) if cut > start else _trim(text, cut, end)
                if end <= start:
                    continue
            if ner and "(" in text[start:end]:
                # "Calorie Counter(PDF": a name holds no parenthesis; its part before counts
                start, end = _trim(text, start, text.index("(", start))
                if end <= start:
                    continue
            if ner and typ in ("NAME", "LOCATION") and self.product_list_before.search(
                    text, max(0, start - 200), start):
                continue  # a brand in a list after its kind ("antacids, such as Tums, Titralac")
            if ner and typ in ("NAME", "LOCATION"):
                if markers is None:
                    markers = _list_markers(text)
                start, end = _outside_list_markers(text, start, end, markers, self._common_not_name)
                if end <= start:
                    continue
            if ner and typ in ("NAME", "LOCATION"):
                if asked is None:
                    asked = _thing_terms(text + "\n" + context)
                if text[start:end] in asked:
                    continue  # "What is Medigap?", "sold as Elmiron": the record says it is a thing
            if ner and typ == "NAME":
                # "ex-Zombie Kastner", "then-Senator Lee": a lower-case epithet is no part of the name
                epithet = _EPITHET.match(text, start, end)
                if epithet:
                    start = epithet.end()
            if (ner and typ == "LOCATION"
                    and (self._possessor(text, end)
                         or (self.names.listed_given(text[start:end]) and not self._place_context(text, start, end)))
                    and not self._plausible_ner(text, start, end, typ, context)):
                typ = "NAME"  # "him and Franciska's kid", "than early Ström?": NER's GPE is a person
            if (ner or name in _LOOSE_NAME_PATTERNS) and not self._plausible_ner(text, start, end, typ, context):
                continue
            if typ == "NAME" and name != "name_title" and self._genus_before_species(text, end):
                continue  # "Bacteria called Tropheryma whipplei"
            if (typ == "NAME" and not ner and name != "name_title"
                    and all(_abbreviation_like(w) and w.lower() not in self.names.given
                            and w.lower() not in self.names.surnames for w in text[start:end].split())):
                continue  # "also called OctreoScan": a brand's capitals, no name
            if name in _LONE_WORD_PATTERNS and (self._common_word_alone(text, start, end, raw, r) or (
                    text[start:end].split()[0].lower() in self.stop_words
                    and text[start:end].split()[0].lower() not in self.names.given)):
                continue  # "If Im treated at a dialysis center": a sentence's first word
            if typ == "URL" and not _plausible_url(text[start:end]):
                continue
            if groups and typ in ("NAME", "LOCATION", "HOSPITAL") and _listed_with(text, start, end, groups):
                continue
            if typ in _SHAPE_CHECKED and public_value(text, start, end, typ):
                continue  # an agency's URL, a toll-free number, a population's age bound
            if typ == "ZIP" and year_after_month(text, start, end):
                continue  # "as of November 2014": a year, no postcode
            if typ == "DATE" and population_date(text, start, end) and not self._about_individual(text, context):
                continue  # "As of November 2012, 227 cases", "On <date>, the ... (FDA)"
            if typ in ("LOCATION", "HOSPITAL") and study_site(text, start, end):
                continue  # "patients (N=1200) ... were recruited from clinics in Philadelphia"
            if typ == "URL" and self._organisation_url(text[start:end]):
                continue  # a foundation's site ("www.cjdfoundation.org")
            if typ == "NAME" and name != "name_title" and self._term_not_name(text[start:end], acronyms) or (
                    typ in ("NAME", "LOCATION") and name != "name_title" and _cited_or_counted(text, start, end)):
                continue  # "Multisystem LCH", "Raloxifene is", "(Weathers, 2010)", "Fatalists (19%)"
            # an existing mask is already redacted: keep only what lies outside it
            for start, end in _outside(start, end, masked):
                start, end = _trim(text, start, end)
                if end - start < 2 or not any(c.isalnum() for c in text[start:end]):
                    continue
                # what is left beside a mask must still look like a name ("XXXX XXXX PM" -> "PM")
                if (ner and masked
                        and not self._plausible_ner(text, start, end, typ, context)):
                    continue
                first = re.match(r"[^\W\d_][\w'\u2019-]*", text[start:end])
                if (typ in ("NAME", "LOCATION") and name != "name_title" and first and first.end() < end - start
                        and first.group().lower() not in self.names.given
                        and self.eponyms.head_after(text, start + first.end(), max_modifiers=0)):
                    continue  # "Kegel Exercise Tips", "Goodpasture Syndrome Foundation": an eponym's term
                if typ == "HOSPITAL" and re.fullmatch(r"(?:[\w'\u2019-]+[ \t]+)+Health", text[start:end]) and all(
                        self.is_medicine_word(w) for w in text[start:end].split()[:-1]):
                    continue  # "Eating Right for Kidney Health": a topic, no health system
                if typ == "NAME" and (_HISTORICAL_AFTER.match(text, end) or _DISCOVERER_AFTER.match(text, end)):
                    continue  # "first identified by Dr. Thomas Addison in 1849": dead long ago
                if typ in self.deny_types and self._is_medicine(
                        text, start, end, titled=name == "name_title"
                        or bool(typ == "NAME" and _TITLE_BEFORE.search(text, max(0, start - 8), start)),
                        strict=typ in ("HOSPITAL", "ADDRESS")):
                    continue
                if (typ == "LOCATION" or typ == "NAME" and name != "name_title") and (
                        _norm(text[start:end]) in self.kept_places or self._places_side_by_side(text, start, end)):
                    continue  # Safe Harbor allows states and countries ("from Somalia presents")
                nxt = _NEXT_WORD.match(text, end) if typ == "LOCATION" else None
                if nxt and _norm(f"{text[start:end]} {nxt.group(1)}") in self.kept_places:
                    continue  # the first word of one, cut by a footnote: "South America.1"
                found.append(Finding(start, end, typ, float(r.score), name))
        if found:
            found = self.public_lines.keep(found, self.public_lines.spans(text))
        found = self._extend_address_blocks(text, found, masked)
        # the tagger's candidates are a fallback: any other finding on the same words wins
        # (its type is better: "Via Tasso 129, Sorrento" is a place)
        found = [f for f in found if f.recognizer != "proper_noun" or all(
            g.recognizer == "proper_noun" or g.end <= f.start or f.end <= g.start for g in found)]
        kept = _resolve_overlaps(found, self.priority, text)
        if "NAME" in self.entities:
            kept = _resolve_overlaps(kept + self._coordinated_names(text, kept, masked, context), self.priority)
            kept = _resolve_overlaps(kept + self._repeat_names(text, kept, masked), self.priority)
        return kept

    def _plausible_tagged(self, text: str, start: int, end: int, typ: str,
                          markers: set[str] | None) -> bool:
        """The light checks for the optional name model's findings (it also finds lower-case
        names, so spaCy's capitalisation checks do not apply): not an item's first word, not
        a lone common word at a sentence start, not an abbreviation, not a clinical word."""
        span = text[start:end]
        if typ != "ADDRESS" and (any(c.isdigit() for c in span) or (
                "_" in (text[start - 1:start], text[end:end + 1]) and not any(
                    (w.lower() in self.names.given or w.lower() in self.names.surnames) and w not in self.english_words
                    for w in _ALPHA_RUN.findall(span)))):
            return False  # a part of an id or a file's name ("medqa_usmle_4opt_test.jsonl"; not "john_smith.txt")
        if typ != "ADDRESS" and not any(c.isupper() for c in span) and any(c.isupper() for c in text) and any(
                c.islower() for c in text):
            # lower case in a text that uses capitals: a name only as a full name with a
            # listed given name or surname that is no word ("with eva kleist"; not "midline",
            # "levodopa/carbidopa", "Interferon alfa")
            words = _ALPHA_RUN.findall(span)
            if len(words) < 2 or not any(w.lower() in self.names.given or w.lower() in self.names.surnames
                                         for w in words if w not in self.english_words):
                return False
        if typ == "ADDRESS":
            # a number and a street's word ("Apt. 805", "29 Rue de Tanger"): on clinical text
            # the model's street labels also fire on lab values and terms ("760 U/L", "HLA-A3",
            # "Sabouraud agar")
            one_case = not any(c.isupper() for c in text) or not any(c.islower() for c in text)
            line_start = text.rfind("\n", 0, start) + 1
            line_end = text.find("\n", end)
            near = text[max(line_start, start - 16):min(end + 16, len(text) if line_end < 0 else line_end)]
            if _LAB_VALUE.search(near) or (span.isupper() and len(span) <= 4):
                return False  # "760 U/L", "HLA-A3", "ALP 180"
            if self.street_word.search(near) or _UNIT_NUMBER.search(near):
                return True  # "rue ...", "tachkent St.", "ul. Zamkowa 33", "Apt. 561"
            # a house number and a street's name beside it ("30102 Kaevu 94", "Vesterskovvej 79"),
            # words of their own (not a file's line, "medqa_test.jsonl:1269")
            return bool(_HOUSE_NUMBER.search(near)) and any(
                len(w) >= 3 and (one_case or w[0].isupper() and not w.isupper())
                and not self.is_medicine_word(w) and w not in self.english_words
                for w in (t.strip(",.;") for t in near.split()) if _STREET_NAME_WORD.fullmatch(w))
        if typ not in ("NAME", "LOCATION"):
            return True
        s, e = _outside_list_markers(text, start, end, _list_markers(text) if markers is None else markers,
                                     self._common_not_name)
        if e <= s or "\n" in text[s:e]:
            return False
        words = text[s:e].split()
        if any(_abbreviation_like(w) for w in words) or any(
                self.medical_word.match(w.strip(".,'\u2019()")) for w in words):
            return False
        # a genus and species ("Candida albicans"), a term ending in its kind ("... purpura")
        if len(words) > 1 and (_SPECIES_AFTER.fullmatch(" " + words[-1]) and words[-1] not in self.english_words
                               or self.eponym_after.match(" " + words[-1])):
            return False
        species = _SPECIES_AFTER.match(text, e)
        if species and species.group(1) not in self.english_words:
            return False
        if len(words) == 1:
            w = words[0].strip(".,'\u2019()")
            if _SENTENCE_START.search(text, 0, s) and not _INITIAL_OR_TITLE_BEFORE.search(text, 0, s) and (
                    _LABEL_AFTER.match(text, e)
                    or w.lower() not in self.names.given and w.lower() not in self.names.surnames
                    and not _PERSON_VERB_AFTER.match(text, e) and not _SPEECH_AFTER.match(text, e)
                    and not self._address_line(text, e)
                    and not _NAME_ASKED_BEFORE.search(text, max(0, s - 40), s)
                    and not self._listed_name_beside(text, e)):
                # a lone word first in its sentence is as often a term as a name: a listed
                # name only ("Pralatrexate may slow ...", "Bradykinin formation: decreased")
                return False
            if len(w) <= 2 or (self._common_not_name(w) and _SENTENCE_START.search(text, 0, s)
                               and not _INITIAL_OR_TITLE_BEFORE.search(text, 0, s)):
                return False
        return True

    def _places_side_by_side(self, text: str, start: int, end: int) -> bool:
        """Two or more states or countries side by side ("Holland Brazil", "France United
        Kingdom"), in a text that names at least three: a table's cells, not a person
        ("Virginia Jordan" in a note that names no other place)."""
        words = text[start:end].split()
        if not self.kept_places or len(words) < 2:
            return False
        i = parts = 0
        while i < len(words):
            j = next((j for j in range(len(words), i, -1) if _norm(" ".join(words[i:j])) in self.kept_places), None)
            if j is None:
                return False
            i, parts = j, parts + 1
        return parts >= 2 and sum(1 for p in self._kept_place_words if _word_in(p, text)) >= 3

    def _listed_name_beside(self, text: str, end: int) -> bool:
        """Another person joined by "and" after a word, a listed name ("Muslija and Brown were")."""
        m = re.match(r"[ \t]+(?:and|&)[ \t]+([A-Z][a-z]+)\b", text[end:end + 40])
        return bool(m and (m.group(1).lower() in self.names.given or m.group(1).lower() in self.names.surnames)
                    and m.group(1) not in self.english_words)

    def _address_line(self, text: str, end: int) -> bool:
        """A line of an address block ends here: a region code or a country follows
        ("Beerze\n, OV", "Mazée\n Belgium 65260", "ASKIM\n Sweden.")."""
        if _REGION_AFTER.match(text, end):
            return True
        nxt = re.match(r"[ \t]*\n[ \t>]*([^\W\d_][\w ]*?)[ \t]*(?:\d|[.,]|\n|$)", text[end:end + 40])
        return bool(nxt and _norm(nxt.group(1)) in self.kept_places)

    def _genus_before_species(self, text: str, end: int) -> bool:
        """A capitalised word before a Latin epithet in no dictionary ("Tropheryma whipplei")."""
        species = _SPECIES_AFTER.match(text, end)
        return bool(species and species.group(1) not in self.english_words)

    def _about_individual(self, text: str, context: str) -> bool:
        """Whether the text or its record shows a sign of one person (see ``scope``)."""
        return self.prose_scope.mentions_individual(text) or bool(context and self.prose_scope.mentions_individual(context))

    def _term_not_name(self, span: str, acronyms: frozenset[str]) -> bool:
        """A name-like span that is a term: it holds an acronym the text defines from common
        words ("Langerhans cell histiocytosis (LCH)"), or each of its words has a medical
        shape ("Chemoradiation", "Raloxifene") and is in no given-name or surname list."""
        words = [w.strip(".,;:'\u2019()") for w in span.split()]
        if any(w in acronyms for w in words):
            return True
        return bool(words) and all(
            w and self.medical_word.match(w) and w.lower() not in self.names.given
            and w.lower() not in self.names.surnames for w in words)

    def _common_not_name(self, word: str) -> bool:
        w = word.strip(".,;:'\u2019()")
        return w in self.english_words and w.lower() not in self.names.given

    def _common_word_alone(self, text: str, start: int, end: int, raw: list[Any], r: Any) -> bool:
        """A context pattern's lone common word that no model calls a name and no name list
        holds ("Insurance denied it", "Previously seen at ...")."""
        span = text[start:end]
        if len(span.strip()) <= 2:
            return True  # "Se", a lone letter pair
        if " " in span.strip() or (span not in self.english_words
                                   and span.lower() not in self.stop_words):
            return False
        if span.lower() in self.names.given:
            return False  # "Walker began writing", "Scott had given"
        # a surname that is a stop word too is no name alone ("Some states make ...")
        if span.lower() in self.names.surnames and span.lower() not in self.stop_words:
            return False  # "Ley began writing"
        return not any(o is not r and o.entity_type == "PERSON" and o.start < end and start < o.end
                       for o in raw)

    def _coordinated_names(self, text: str, found: list[Finding],
                           masked: list[tuple[int, int]], context: str = "") -> list[Finding]:
        """Words coordinated with a name are names ("founders: Eklund, Michael and Hodge",
        "Marrero and Murphy"): the model finds one member of a list and misses the others."""
        names = [f for f in found if f.type == "NAME"]
        if not names:
            return []
        out = []
        for m in self.name_list.finditer(text):
            members = [g.span() for g in self.list_member.finditer(text, m.start(), m.end())]
            if not any(f.start < e and s < f.end for s, e in members for f in names):
                continue
            for s, e in members:
                s, e = _trim(text, s, e)
                # common words in a list are not made names by it ("Mineral and Bone Disorder")
                if all(w in self.english_words for w in text[s:e].split()):
                    continue
                if (all(e <= f.start or f.end <= s for f in found)
                        and not any(ms < e and s < me for ms, me in masked)
                        and self._plausible_ner(text, s, e, "NAME", context)
                        and not self._is_medicine(text, s, e)):
                    out.append(Finding(s, e, "NAME", 0.6, "name_list"))
        return out

    def _extend_address_blocks(self, text: str, found: list[Finding],
                               masked: list[tuple[int, int]]) -> list[Finding]:
        """A postal address goes on after the street: the unit, town, region, postcode and
        country follow on the next short lines or after commas ("12 Rue X\\n Apt. 3\\n
        DOLE\\n France 35910"). Each part becomes a finding of its own: a unit is ADDRESS,
        a postcode ZIP, a town LOCATION; states and countries stay (Safe Harbor)."""
        out = list(found)
        for i, f in enumerate(found):
            if f.type != "ADDRESS":
                continue
            # a building number before the street's own number ("at 5521 119 Countess Close")
            lead = _BUILDING_NUMBER.search(text, max(0, f.start - 8), f.start)
            if lead and f.recognizer != "address_labelled" and text[f.start].isdigit():
                out[i] = f = Finding(lead.start(), f.end, f.type, f.score, f.recognizer)
            end, parts = f.end, 0
            while parts < int(self.cfg["address_block"]["max_parts"]):
                m = self.address_part.match(text, end)
                if not m or any(s < m.end() and m.start() < e for s, e in masked):
                    break
                end, parts = m.end(), parts + 1
                grp = next(g for g in ("unit", "nl", "comma") if m.group(g) is not None)
                out.extend(self._address_part(text, m.start(grp), m.end(grp)))
        return out

    def _address_part(self, text: str, start: int, end: int) -> list[Finding]:
        start, end = _trim(text, start, end)
        part = text[start:end]
        if not part or part.lower() == "nan":
            return []
        if _UNIT.match(part):
            return [Finding(start, end, "ADDRESS", 0.8, "address_block")]
        out = []
        code = _POSTCODE_TAIL.search(part)
        if code:
            out.append(Finding(start + code.start(1), start + code.end(1), "ZIP", 0.8, "address_block"))
            end = start + code.start()
            part = text[start:end]
        words = part.strip()
        if (words and words.lower() != "nan" and _norm(words) not in self.kept_places
                and not re.fullmatch(r"[A-Z]{2}", words) and not self._is_medicine(text, start, end)):
            out.append(Finding(start, end, "LOCATION", 0.8, "address_block"))
        return out

    def _repeat_names(self, text: str, found: list[Finding],
                      masked: list[tuple[int, int]]) -> list[Finding]:
        """A name found once in a text is a name wherever else it occurs there ("Christine
        Hertzog ... calls me Christine"): NER sees it in one sentence only."""
        words = set()
        for f in found:
            if f.type == "NAME":
                for w in re.findall(r"[^\W\d_][\w'\u2019-]+", text[f.start:f.end]):
                    if len(w) > 2 and w.lower() not in _PARTICLES and not self.is_medicine_word(w) \
                            and _norm(w) not in self.not_name_words:
                        words.add(w)
        if not words:
            return []
        rx = re.compile(r"(?<![\w-])(?:" + "|".join(map(re.escape, sorted(words, key=len, reverse=True)))
                        + r")(?![\w-])")
        return [Finding(m.start(), m.end(), "NAME", 0.6, "name_repeat") for m in rx.finditer(text)
                if all(m.end() <= f.start or f.end <= m.start() for f in found)
                and not any(s < m.end() and m.start() < e for s, e in masked)
                # a person's name stays one before a possessive ("Maldonado's kidney disease")
                and not self._is_medicine(text, m.start(), m.end(), titled=True)]

    def _plausible_ner(self, text: str, start: int, end: int, typ: str, context: str = "") -> bool:
        """The small spaCy model tags many clinical words as PERSON or GPE ("Dyspnea",
        "Pulmonary", "Cardiomegaly"). An NER-only finding must look like a proper noun
        (capitalised words, no digits, not a lone acronym) and hold no clinical word: none
        from the deny lists and none shaped like a medical term ("-itis", "-omegaly").
        A place also needs a place-like neighbourhood ("lives in X", "X, IL") unless it has
        several words."""
        words = re.findall(r"[^\s,]+", text[start:end])
        if not words or any(any(c.isdigit() for c in w) for w in words):
            return False
        if text[end - 1:end] == "-" or (text[end:end + 1] == "-" and text[end + 1:end + 2].isalnum()):
            return False  # the head of a compound: "Lys-tRNA"
        if text[start - 1:start] == "-" and text[start - 2:start - 1].isalnum():
            return False  # its tail: "γ-Glutamyl", "anti-Ro"
        # a genus before its species: "Entamoeba histolytica", "Staphylococcus aureus"
        species = _SPECIES_AFTER.match(text, end)
        if species and species.group(1) not in self.english_words:
            return False
        if text[start - 1:start] == "/" or text[end:end + 1] == "/":
            return False  # a part of "PI3K/Akt/mTOR", "and/or"
        if "\n" in text[start:end]:
            return False  # a name does not run over a line break ("CT\nD.")
        # a word with capitals inside is an abbreviation or a compound, not a name ("IgM",
        # "GnRH", "LDL-cholesterol", "Anti-D IgG"); "McDowell", "DeShawn" are names
        proper = [w for w in words if w.lower() not in _PARTICLES]
        if any(_abbreviation_like(w) for w in re.findall(r"[^\W\d_]+(?:-[^\W\d_]+)*", text[start:end])):
            return False
        if typ == "LOCATION" and len(proper) == 1 and proper[0].isupper() and len(proper[0]) <= 3:
            return False  # "4 units of IV fluids", "Defect in BTK gene"
        # a stage of a staging system: "Tanner IV breasts", "Tanner IV"
        if len(proper) == 1 and re.match(r"[ \t]+(?:I{1,3}|IV|V)\b", text[end:end + 6]) or (
                len(proper) == 2 and re.fullmatch(r"I{1,3}|IV|V", proper[1].strip(".,"))):
            return False
        # an enzyme or protein's letter or numeral: "Arylsulfatase A", "Antithrombin III"
        if (len(proper) > 1 and re.fullmatch(r"[A-Z]|[IVX]{2,4}", proper[-1].strip(".,"))
                and proper[0].lower() not in self.names.given):
            return False
        # only common words, none of them a given name ("Alanine Transaminase", "Color Pale")
        if (typ == "NAME" and len(proper) > 1 and proper[0].lower() not in self.names.given
                # an initial before a listed surname: "J. Smith" (not "hepatitis C. Having",
                # "hepatitis B. People": a letter after a term ends its name)
                and not (re.fullmatch(r"[A-Z]\.", proper[0]) and proper[-1].lower() in self.names.surnames
                         and not _TERM_BEFORE.search(text, max(0, start - 30), start))
                and all(w.strip(".,'\u2019()") in self.english_words for w in proper)):
            return False
        if typ in ("NAME", "LOCATION") and len(words) == 1:
            # the modifier of a condition in title case: "symptoms of Vesicoureteral Reflux"
            head = re.match(r"[ \t]+([A-Z][a-z]+)\b", text[end:end + 30])
            if (head and self.condition_head.fullmatch(head.group(1))
                    and words[0].lower() not in self.names.common_given):
                return False
            # an adjective beside a lower-case one: "in Western and industrialized countries"
            if (words[0] in self.english_words and words[0].lower() not in self.names.given
                    and re.match(r"[ \t]+(?:and|or)[ \t]+[a-z]{3,}[ \t]+[a-z]", text[end:end + 40])
                    and not _RESIDENCE_BEFORE.search(text, max(0, start - 30), start)):
                return False
            # an abbreviation or brand beside its term: "diphtheria (Td or Tdap)", "clozapine
            # (Clozaril, FazaClo)", "Ursodiol (Actigall)"
            # (a place only after a drug: "lives in town (Springfield)" is a town)
            m = _PAREN_AFTER_WORD.search(text, max(0, start - 60), start)
            if m and (self.medical_word.match(m.group(1)) or m.group(1).lower() in self.product_kinds
                      or _abbreviation_like(m.group(1))
                      or (self.is_medicine_word(m.group(1)) and m.group(1).lower() not in self.facility_words)
                      or (typ == "NAME" and m.group(1).islower() and m.group(1) not in self.people_words)
                      # a term in no name list: its brands follow ("Simethicone (Gas-X, Mylanta Gas)")
                      or (typ == "NAME" and m.group(1) not in self.english_words
                          and m.group(1).lower() not in self.names.given
                          and m.group(1).lower() not in self.names.surnames)):
                return False
            if (_BRAND_IN_PARENS_AFTER.match(text, end) and words[0].lower() not in self.names.given
                    and words[0].lower() not in self.names.surnames):
                return False  # a drug before its brand: "Baclofen (Lioresal) is prescribed"
            core = words[0].strip(".,'\u2019()")
            # a plural of a common noun in no name list ("Symptoms in Newborns", "Cranberries"),
            # a gerund ("Eating, Diet, and Nutrition"): a person or a town is neither, unless
            # it is where someone lives ("lives in Woodlands")
            if (core.lower() not in self.names.given and core.lower() not in self.names.surnames
                    and (self._plural_noun(core) or (core.endswith("ing") and core in self.english_words))
                    and not _RESIDENCE_BEFORE.search(text, max(0, start - 30), start)):
                return False
        if typ == "NAME" and len(words) == 1:
            core = words[0].strip(".'\u2019()")
            if len(core) <= 2:
                return False  # "mm Hg", a lone initial
            # a term glossed in lower case: "Antiestrogens (drugs that block estrogen)"; a
            # person's gloss names a relation ("Anna (my sister)"), which stays a name
            gloss = _PAREN_LOWER_AFTER.match(text, end)
            if gloss and not set(re.findall(r"[a-z]+", gloss.group())) & (self.people_words | _OWNERS):
                return False
        proper = [w for w in words if w.lower() not in _PARTICLES]
        if proper and typ == "LOCATION" and all_lower_case(text):
            # a place in lower-case text: after a place word, with a word no dictionary holds
            return (bool(_PLACE_BEFORE.search(text[max(0, start - 24):start]))
                    and any(w.strip(".,") not in self.english_words for w in proper)
                    and not any(self.is_medicine_word(w) or self.medical_word.match(w.strip(".,'\u2019"))
                                for w in proper))
        if proper and typ == "NAME" and all_lower_case(text):
            # a text typed in lower case: a given name first and a surname (or no dictionary
            # word) last, as name_context.py asks; no clinical word
            return (plausible_lower_case_name(proper, self.names.given, self.names.surnames,
                                              lambda w: w in self.english_words, self.stop_words)
                    and not any(self.is_medicine_word(w) or self.medical_word.match(w.strip(".,'\u2019"))
                                for w in proper))
        if not proper or any(not w[0].isupper() for w in proper):
            return False
        if len(proper) == 1 and proper[0].isupper() and len(proper[0]) > 1 and typ == "NAME":
            return False  # an acronym ("SOB", "CTA")
        # one common word where a sentence or a list item starts is capitalised by its place
        # ("Leukocyte count ...", "Cultures grew ...", "(B) Septic arthritis")
        # (a given name stays a name there: "David is ...", "Dale and White were ...")
        if (len(words) == 1 and typ == "NAME" and words[0].strip(".'\u2019") in self.english_words
                and words[0].strip(".'\u2019").lower() not in self.names.given
                and _SENTENCE_START.search(text, 0, start) and not _ADDRESSED.match(text, end)):
            return False
        # the first of a list of common nouns ("Rice, potatoes, bread, tortillas")
        if (len(words) == 1 and words[0] in self.english_words
                and words[0].lower() not in self.names.common_given
                and re.match(r",[ \t]+[a-z]+,[ \t]+[a-z]+[,;]", text[end:end + 60])):
            return False
        # a brand with its release form ("Ditropan XL", "Detrol LA"), in no name list
        if (len(words) > 1 and re.fullmatch(r"XL|XR|SR|CR|LA|CD|ODT|HCT", words[-1].strip(".,"))
                and all(w.lower() not in self.names.given and w.lower() not in self.names.surnames
                        for w in words[:-1])):
            return False
        if any(self._glued(w) for w in proper):
            return False
        # a condition in title case ("Erectile Dysfunction", "Vesicoureteral Reflux"): no place
        # or person ends in the kind of a disease
        if (len(proper) > 1 and self.condition_head.fullmatch(proper[-1].strip(".,'\u2019"))
                and proper[0].lower() not in self.names.common_given):
            return False
        if len(proper) > 1:
            span = text[start:end]
            first = len(words[0])
            # written in sentence case elsewhere in the text or its record ("Vesicoureteral
            # Reflux" above "Vesicoureteral reflux is ..."): a term, capitalised as a title
            lowered = span[:first] + span[first:].lower()
            if lowered != span and _word_in(lowered, text + "\n" + context):
                return False
            # states and countries side by side in a table ("France Ireland")
            if typ == "LOCATION" and all(_norm(w) in self.kept_places for w in proper):
                return False
            # an institution named after a person ("Eunice Kennedy Shriver National Institute")
            if self.org_head.fullmatch(proper[-1].strip(".,")):
                return False
        # common words before an abbreviation make a term: "Nighttime UI", "Daytime UI"
        if (len(proper) > 1 and re.fullmatch(r"[A-Z]{2,5}s?", proper[-1].strip(".,()"))
                and all(w in self.english_words and w.lower() not in self.names.given for w in proper[:-1])):
            return False
        if typ == "NAME" and len(proper) > 1 and self.eponym_after.match(" " + proper[-1]):
            return False  # a term ending in "Disorder", "Syndrome" ("Bone Disorder")
        for w in proper:
            core = w.strip(".'\u2019()")
            if len(core) == 1 and len(proper) > 1:
                continue  # an initial ("Hanne I. Kreutzmann"), not the pronoun
            if (_norm(core) in self.not_name_words or self.medical_word.match(core)
                    or (len(proper) > 1 and self.is_medicine_word(core) and typ == "LOCATION")):
                return False
        # a heading on a line of its own that ends in a plural common noun ("Key Points",
        # "Hydatidiform Moles", "- Foodborne Illnesses"): a person's name is not plural
        if len(proper) > 1 and proper[0].lower() not in self.names.common_given \
                and self._heading_line(text, start, end) and self._plural_noun(proper[-1]):
            return False
        # capitalised only by its place (a sentence start, a heading): the same words stand in
        # lower case elsewhere in the text ("Adult acute leukemia ... adult ALL"). A name
        # does not turn into a common noun within one text.
        # The record's other texts count too ("What causes Cystocele?" above an answer that
        # says "a cystocele ..."), except for a common given name ("Rose" beside "BP rose").
        # (an acronym beside such a word is the term's: "*Protoporphyria XLPP is a variant")
        capital = [w for w in proper if w[0].isupper()]
        if len(capital) > 1 and not all(_ACRONYM.fullmatch(w) for w in capital):
            capital = [w for w in capital if not _ACRONYM.fullmatch(w)]
        if all(_word_in(w.lower(), text)
               or (context and w.lower() not in self.names.common_given
                   and _word_in(w.lower(), context))
               for w in capital):
            return False
        if typ == "LOCATION":
            before = text[max(0, start - 24):start]
            after = text[end:end + 24]
            return bool((_PLACE_BEFORE.search(before) and not _AMOUNT_OF.search(before))
                        or _PLACE_AFTER.match(after)
                        or (len(proper) > 1 and not any(w.isupper() for w in proper)))
        return True

    def _place_context(self, text: str, start: int, end: int) -> bool:
        """Whether a GPE that is also a given name stands as a place: after an area word or
        a count ("south east London", "four London boroughs"), before a common noun it
        qualifies ("London handicap scale", "Washington state"), beside another place ("in
        Lyon and Geneva", "Paris and surrounding suburbs"), before a state's code ("Washington,
        D.C."), or glossed with no person in the gloss ("Carina (where the trachea joins ...)")."""
        if _AREA_BEFORE.search(text, max(0, start - 40), start) or _STATE_CODE_AFTER.match(text, end):
            return True
        nxt = re.match(r"[ \t]+([a-z]+)\b(?![-'\u2019])", text[end:end + 30])
        if nxt and nxt.group(1) in self.english_words and nxt.group(1) not in self.stop_words \
                and nxt.group(1) not in self.people_words and nxt.group(1) not in _KIN:
            return True
        gloss = _PAREN_LOWER_AFTER.match(text, end)
        return bool(gloss) and not set(re.findall(r"[a-z]+", gloss.group())) & self.people_words

    def _possessor(self, text: str, end: int) -> bool:
        """A word before "'s" and a relative or a friend is a person ("Franciska's kid")."""
        m = re.match(r"['\u2019]s[ \t]+([a-z]+)", text[end:end + 24])
        return bool(m) and (m.group(1) in self.people_words or m.group(1) in _KIN)

    def _heading_line(self, text: str, start: int, end: int) -> bool:
        """Whether ``text[start:end]`` ends its line and starts it or a list item in it."""
        line_start = text.rfind("\n", 0, start) + 1
        line_end = text.find("\n", end)
        before = text[line_start:start]
        after = text[end:line_end if line_end >= 0 else len(text)]
        return bool((re.fullmatch(r"[ \t]*(?:[-*\u2022][ \t]*)?", before)
                     or re.search(r"(?:^|[ \t])[-*\u2022][ \t]+$", before))
                    and re.fullmatch(r"[ \t:.]*", after))

    def _plural_noun(self, word: str) -> bool:
        """A plural of a common noun: "Points", "Moles", "Illnesses" (not "Jones")."""
        w = word.strip(".,'\u2019").lower()
        if not w.endswith("s") or w.endswith(("ss", "us", "is")) or w in self.english_words.words:
            return False
        return (w[:-1] in self.english_words.words or (w.endswith("es") and w[:-2] in self.english_words.words)
                or (w.endswith("ies") and w[:-3] + "y" in self.english_words.words))  # "Cranberries"

    def _organisation_url(self, url: str) -> bool:
        """A non-profit organisation's public site: a ``.org`` domain or its "www.", no query,
        no "~" or "@", no digits in the path (a page numbering a record is someone's), and a
        domain that is no person's name ("nelson-freeman.org"). An inside host
        ("intranet.example.org", "portal.") is not its public site."""
        if "?" in url or "~" in url or "@" in url:
            return False
        host, _, path = re.sub(r"^(?i:[a-z][a-z0-9+.-]*://)", "", url).partition("/")
        labels = host.split(":", 1)[0].lower().split(".")
        if labels[0] == "www":
            labels = labels[1:]
        if len(labels) != 2 or labels[1] != "org" or re.search(r"\d", path):
            return False
        return not any(p in self.names.given or p in self.names.surnames
                       for p in re.split(r"[-_]", labels[0]) if p)

    def _glued(self, word: str) -> bool:
        """Two words run together where a dash or a space was lost ("the Vietnam Warmay be",
        "Medicaidpartially finance", "Refluxurine flowing"): a capitalised common word, then a
        function word, an adverb or a clinical word of five letters or more; the whole in no
        name list and no dictionary ("Porterside" is a town)."""
        w = word.strip(".,'\u2019()")
        if (len(w) < 6 or not w.isalpha() or not w[:1].isupper() or w in self.english_words
                or w.lower() in self.names.given or w.lower() in self.names.surnames):
            return False
        if len(w) >= 6 and w[1:].islower() and w[1:] in self.english_words:
            return True  # a letter run into the next word: "hepatitis B, C, or Dviral infections"
        for i in range(3, len(w) - 2):
            head, tail = w[:i], w[i:]
            if tail.islower() and head in self.english_words and (
                    tail in _FUNCTION_WORDS or (tail.endswith("ly") and tail in self.english_words)
                    or (len(tail) >= 5 and self.is_medicine_word(tail))):
                return True
        return False

    def is_medicine_word(self, word: str) -> bool:
        return _norm(word) in self.deny_terms

    def _is_medicine(self, text: str, start: int, end: int, titled: bool = False,
                     strict: bool = False) -> bool:
        """Medicine, not PHI: deny-list words only, or an eponym ("Parkinson's disease",
        "Cox proportional hazards", "non-Hodgkin"; see ``terms.Eponyms``). After a title
        ("Dr. Parkinson") only a head right after the name or a leader before it counts, and
        a person's full name ("Leah Maldonado's test") is never an eponym. ``strict`` (a
        facility or an address: "Three Gables Surgery") asks for the head right after it too."""
        span = text[start:end]
        words = re.split(r"[\s,]+", span.strip())
        if not titled and (_norm(span) in self.deny_terms
                           or (words and all(_norm(w) in self.deny_terms for w in words if w))
                           # a possessive without its apostrophe: "Charcots foot"
                           or (len(words) == 1 and _norm(span).endswith("s")
                               and _norm(span)[:-1] in self.deny_terms)):
            return True
        if self.eponyms.full_name(text, start, end):
            return False
        if titled or strict:
            # "Dr. Parkinson disease" maybe; "Mr. Smith's test results" is Mr. Smith's
            return (not re.match(r"['\u2019]", text[end:end + 1])
                    and self.eponyms.head_after(text, end, max_modifiers=0))
        if self.eponyms.head_after(text, end, start=start):
            return True
        if self.eponym_before.search(text, max(0, start - 30), start):
            return True
        # an eponym in one place of the text is one everywhere in it
        return (not titled and len(words) == 1
                and self.eponyms.used_as_eponym(text, words[0].strip(".,'\u2019()")))


#: what stands before where someone lives ("lives in", "moved to", "from the")
_RESIDENCE_BEFORE = re.compile(r"(?i)\b(?:lives?|lived|living|resides?|resided|resident|born|moved|moving|"
                               r"relocated|visiting|visited|travel\w*|returned|from|near|town|city|county|"
                               r"village|suburb)\s+(?:(?:in|to|of|at)\s+)?(?:the\s+)?$")
#: the words a glued pair ends in ("Warmay", "Medicaidpartially"): verbs' auxiliaries,
#: conjunctions and prepositions (not a stop word such as "side": "Porterside" is a town)
_FUNCTION_WORDS = frozenset({"may", "might", "can", "could", "will", "would", "should", "must", "is",
                             "are", "was", "were", "be", "been", "has", "have", "had", "and", "or",
                             "but", "the", "of", "in", "on", "at", "to", "for", "with", "from", "by",
                             "that", "which", "who", "when", "if", "not", "also", "does", "did",
                             "where", "while", "whereas", "because", "though", "although", "than"})
_NEXT_WORD = re.compile(r"[ \t]+([A-Z][a-z]+)")
_ACRONYM = re.compile(r"[A-Z]{2,6}s?")
#: someone who first described a disease, long before any record ("Ernest Goodpasture first described")
_DISCOVERER_AFTER = re.compile(r"[ \t]+first[ \t]+(?:described|discovered|identified|reported|characteri[sz]ed|recogni[sz]ed)\b")
#: a year before 1900 right after a name: no one living, and Safe Harbor's identifiers are
#: those of the living and of the recently dead ("by Dr. Thomas Addison in 1849")
#: (the rest of the name may lie between: the eponym's "Addison" is no finding of its own)
_HISTORICAL_AFTER = re.compile(r"(?:[ \t]+[A-Z][\w'\u2019-]+)?[ \t]*(?:,[ \t]*)?(?:\(|in[ \t]+)1[0-8]\d\d\b")
_ADDRESSED = re.compile(r"[,:][ \t]+(?:[A-Z]|(?:can|could|would|will|please|do|did|are|is|I|you|we)\b)")
#: a bulleted item that a definition follows ("- Supraglottis: The upper part of ..."), no speaker
_DEFINED_ITEM = re.compile(r"[-*\u2022][ \t]+[^\W\d_]+:[ \t]+(?:The|A|An)[ \t]+[a-z]")
# two spaces or more stand for a line break in flattened text ("Surgery     - Embolization")
# a list item starts after a bullet or a letter ("- Embolization", "(B) Septic", "C. Gout")
_SENTENCE_START = re.compile(r"(?:(?:^|[.!?:;\"'>|\n)]|[.!?]\d{1,2})[ \t]*|[ \t]{2,})(?:(?:[-*\u2022]|\(?[A-Ja-j][.)])[ \t]*)?$")
#: a letter that opens an answer option or a list item: "A. ", "(B) ", "c) "
_LIST_MARKER = re.compile(r"(?<![\w.])\(?([A-Ja-j])[.)][ \t]+(?=[^\W\d_])")
#: where a letter opens an item: the text's or a line's start, after a sentence or a colon,
#: after a run of spaces, or after "answer is", "option", "choose"
_MARKER_PLACE = re.compile(r"(?:^|[\n.!?:;)]|[ \t]{2,}|\b(?:is|answer|option|choice|choose|select|correct)\b:?)[ \t]*$",
                           re.IGNORECASE)


#: what a person does after their name ("Kowalczyk said", "Ágnes went"; a drug "is", "may")
_PERSON_VERB_AFTER = re.compile(
    r"(?:'s|\u2019s)?[ \t]+(?:said|says|told|tells|asked|asks|called|calls|went|goes|came|comes|lives|lived|"
    r"works|worked|wants|wanted|wrote|writes|met|moved|arrived|left|returned|drove|walked|sent|gave|"
    r"took|got|thinks|thought|feels|felt|knows|knew|likes|liked|loves|loved|smiled|laughed|replied|"
    r"answered|complained|reported|presented|denies|denied|states|stated|visited|signed|paid|bought|"
    r"owns|owned|married|studied|teaches|taught|joined|decided|stayed|and[ \t]+(?:his|her|their|I)\b|"
    r"(?:is|was|will[ \t]+be|has[ \t]+been)[ \t]+(?:my|his|her|our|their|your|a[ \t]+(?:friend|colleague|"
    r"neighbou?r|patient|nurse|doctor)))\b")
#: a lab value's unit ("760 U/L", "2.8 mg/dL", "138 mmol/L")
_LAB_VALUE = re.compile(r"\d[ \t]*(?:U/L|IU|mg|mcg|µg|g/dL|mmol|mEq|mOsm|µmol|umol|ng|pg|mL|/mm|/µL|/uL|"
                        r"mm\s*Hg|%)", re.IGNORECASE)
#: a unit or box number: an address's part ("Apt. 561", "P.O. Box 186")
_UNIT_NUMBER = re.compile(r"(?i)\b(?:apt|apartment|suite|ste|unit|flat|floor|room|box)\.?[ \t]*#?\d")
#: a speaker's label before their words ('Éva: What a wife.', 'Gijsbrecht: "Who are you?"')
_SPEECH_AFTER = re.compile(r":[ \t]*(?:[\"\u201c']|(?:I|I'm|What|Who|Why|How|Where|When|You|We|Hi|Hello|Yes|No|Oh|Well)\b)")
#: an answer to a question for a name ("What's your last name? Jónás")
_NAME_ASKED_BEFORE = re.compile(r"(?i)\bname\b[^.!?\n]{0,12}[?:][ \t\n]*$")
#: a town's line in an address block: a state or region code after it ("Beerze\n, OV")
_REGION_AFTER = re.compile(r"\s*\n?\s*,\s*[A-Z]{2}\b")
#: a lower-case word and a colon after a word: the label of a row ("Bradykinin formation: ...")
_LABEL_AFTER = re.compile(r"[ \t]+[a-z]+(?:[ \t]+[a-z]+)?[ \t]*:")
#: a common word before a letter: the letter ends a term ("hepatitis B", "vitamin D", "type C")
_TERM_BEFORE = re.compile(r"\b(?!(?:by|with|to|from|and|or|of|for|at|is|was|Dr|Mr|Mrs|Ms|Prof)\b)[a-z]{3,}[ \t]+$")
#: brands in parentheses after a word: "Baclofen (Lioresal)", "Simethicone (Gas-X, Mylanta Gas)"
_BRAND_IN_PARENS_AFTER = re.compile(r"[ \t]*\((?:[A-Z][\w-]*(?:[ \t]+[A-Z][\w-]*)?)(?:[,/][ \t]*[A-Z][\w-]*(?:[ \t]+[A-Z][\w-]*)?)*\)")
#: a title before a letter: the letter is an initial, not an option ("Dr. J. Smith")
_TITLE_BEFORE = re.compile(r"\b(?:Dr|Mr|Mrs|Ms|Mx|Prof|Rev|Sr)\.[ \t]*$")
_MARKER_BEFORE = re.compile(r"(?<![\w.])\(?([A-Ja-j])[.)][ \t]+$")


#: a share right after a word: a group's label ("Fatalists (19%)"), no person's
_SHARE_AFTER = re.compile(r"[ \t]*\([ \t]*(?:n[ \t]*=[ \t]*\d+[,;][ \t]*)?\d+(?:\.\d+)?[ \t]*%")
#: the rest of an author-year citation ("Litz, Herman, Huska,& Keane, 1993)", "et al., 2010;")
_CITATION_AFTER = re.compile(r"(?:[ \t]*(?:,|&|\band\b)[ \t]*(?:&[ \t]*)?[A-Z][\w'\u2019-]+)*"
                             r"(?:[ \t]+et[ \t]+al\.?)?,?[ \t]*(?:19|20)\d\d[a-z]?[ \t]*[;)]")


#: a question about a thing: "What is Medigap?", "What are Kegel Exercises?" (a person is a "who")
_WHAT_IS = re.compile(r"\b(?i:what)[ \t]+(?i:is|are)[ \t]+(?:(?i:an?|the)[ \t]+)?"
                      r"([A-Z][\w'\u2019-]*(?:[ \t]+[A-Z][\w'\u2019-]*){0,3})[ \t]*\?")
#: a brand's cue: "sold as Elmiron", "the brand name Tums", "marketed under"
_SOLD_AS = re.compile(r"\b(?i:(?:sold|marketed|available)[ \t]+(?:as|under)(?:[ \t]+the)?(?:[ \t]+(?:brand|trade)"
                      r"[ \t]+names?)?|(?:brand|trade)[- \t]names?(?:[ \t]+(?:is|are|of|include))?[ \t]*:?)[ \t]+"
                      r"([A-Z][\w'\u2019-]*(?:[ \t]+[A-Z][\w'\u2019-]*){0,2})")


def _thing_terms(text: str) -> frozenset[str]:
    """The capitalised terms a text asks about ("What is ...?") or sells, each with its words."""
    out: set[str] = set()
    for rx in (_WHAT_IS, _SOLD_AS):
        for m in rx.finditer(text):
            out.add(m.group(1))
            out.update(m.group(1).split())
    return frozenset(out)


def _cited_or_counted(text: str, start: int, end: int) -> bool:
    """A name-like span that is a cited author inside a parenthetical author-year citation
    ("(PCL; Weathers, 2010; Weathers, Litz, Herman, Huska,& Keane, 1993)") or a group
    labelled with its share ("Fatalists (19%)")."""
    if _SHARE_AFTER.match(text, end):
        return True
    if not _CITATION_AFTER.match(text, end):
        return False
    before = text[max(0, start - 200):start]
    return before.rfind("(") > before.rfind(")")


_ACRONYM_DEF = re.compile(r"((?:[^\W\d_][\w'\u2019-]*[ \t]+){1,10})\(([A-Z][A-Za-z]{1,7})[s]?\)")
_ACRONYM_GLUE = frozenset({"of", "and", "the", "in", "for", "to", "with", "on", "&"})


def _defined_acronyms(text: str) -> frozenset[str]:
    """Acronyms the text defines from words with at least one in lower case: "Langerhans cell
    histiocytosis (LCH)", "acute lymphoblastic leukemia (ALL)". A person's initials come after
    capitalised words only ("John Smith (JS)"), so they are not taken."""
    out = set()
    for m in _ACRONYM_DEF.finditer(text):
        letters = [c.lower() for c in m.group(2) if c.isupper()]
        if len(letters) < 2:
            continue
        words = [w for w in re.split(r"[ \t-]+", m.group(1).strip()) if w]
        content = [w for w in words if w.lower() not in _ACRONYM_GLUE]
        tail = content[-len(letters):]
        if len(tail) == len(letters) and all(w[0].lower() == c for w, c in zip(tail, letters)) \
                and any(w[0].islower() for w in tail):
            out.add(m.group(2))
    return frozenset(out)


def _listed_with(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> bool:
    """Whether ``text[start:end]`` is an item of a list ("A, B and C", "A/B") right next to
    one of ``spans``."""
    before = re.search(r"(?:,|;|/|\band|\bor)[ \t]*$", text[max(0, start - 8):start])
    if before:
        left = len(text[:start - len(before.group())].rstrip())
        if any(e == left for _, e in spans):
            return True
    after = re.match(r"[ \t]*(?:,|;|/|and\b|or\b)[ \t]*(?:(?:and|or)[ \t]+)?", text[end:end + 12])
    return bool(after) and any(s == end + after.end() for s, _ in spans)


def _abbreviation_like(word: str) -> bool:
    """Capitals inside a word make an abbreviation or a compound, not a name: "IgM",
    "GnRH", "LDL-cholesterol", "Anti-D" (but "McDowell", "Kędzierzyn-Koźle", "NEW")."""
    parts = word.split("-")
    for p in parts:
        if sum(c.isupper() for c in p) > 1 and not p.isupper() and not _NAME_PREFIX.match(p):
            return True
    if len(parts) > 1:
        upper = [p for p in parts if p.isupper()]
        if upper and (any(len(p) == 1 for p in upper) or any(p[:1].islower() for p in parts)):
            return True
    return False


def _list_markers(text: str) -> set[str]:
    """The letters that open items of a lettered list in ``text``: a run from A ("A. ...
    B. ... C. ..."); two initials ("J. Smith and A. Jones") are no list."""
    letters = {m.group(1).upper() for m in _LIST_MARKER.finditer(text)}
    run = set()
    for letter in "ABCDEFGHIJ":
        if letter not in letters:
            break
        run.add(letter)
    return run if len(run) >= 2 else set()


def _outside_list_markers(text: str, start: int, end: int, markers: set[str],
                          common: Any = lambda w: False) -> tuple[int, int]:
    """A model's name span without the option letters in it: "A. Psoriatic" is item A, not an
    initial. The span starts after a leading marker and ends before the next one. An item's
    first word is capitalised by its place: alone it is no name (the span comes back empty),
    and a common word first is left out ("B. Aggressive IV fluids" -> "IV")."""
    at_item = False
    m = _LIST_MARKER.match(text, start)
    if m and (m.group(1).upper() in markers or _MARKER_PLACE.search(text, max(0, start - 24), start)
              and not _TITLE_BEFORE.search(text, max(0, start - 8), start)):
        start, at_item = m.end(), True
    else:
        before = _MARKER_BEFORE.search(text, max(0, start - 6), start)
        at_item = bool(before and (before.group(1).upper() in markers or (
            _MARKER_PLACE.search(text, max(0, before.start() - 24), before.start())
            and not _TITLE_BEFORE.search(text, max(0, before.start() - 8), before.start()))))
    inner = _LIST_MARKER.search(text, start + 1, end)
    if inner and inner.group(1).upper() in markers:
        end = inner.start()  # "Gout D. Septic": the name ends before the next option
    while end > start and text[end - 1] in " \t,;":
        end -= 1
    if at_item:
        words = text[start:end].split()
        if len(words) <= 1:
            return start, start
        if common(words[0]):
            start = text.index(words[1], start + len(words[0]))
    return start, end


_PAREN_AFTER_WORD = re.compile(r"([A-Za-z]+)(?:[ \t]+[A-Z])?[ \t]+\((?:[^()]*(?:,|\bor\b|\band\b)[ \t]*)?$")
_PAREN_LOWER_AFTER = re.compile(r"[ \t]+\([a-z][a-z -]+\)")
#: words of a gloss that tie it to a person ("Anna (my sister)", "Lee (her nurse)")
_OWNERS = frozenset({"my", "his", "her", "their", "our", "your", "pt", "patient", "patients", "mr",
                     "mrs", "ms", "dr", "the"})
#: an initial or a title just before a word: its period ends no sentence ("J. Smith", "Dr. Hill")
_INITIAL_OR_TITLE_BEFORE = re.compile(r"(?<![\w.])(?:[A-Z]|Dr|Mr|Mrs|Ms|Mx|Prof)\.[ \t]*$")
#: a Latin species epithet after a capitalised genus ("aureus", "coli", "histolytica", "albicans")
_SPECIES_AFTER = re.compile(r"[ \t]+([a-z]{3,}(?:us|um|ae|ii|i|a|is|es|ans|ens|oides|ensis|ella|ica|icum|ium))\b")
#: findings of the statistical model (NER, tagger), which need the plausibility checks
_MODEL_RECOGNIZERS = frozenset({"SpacyRecognizer", "proper_noun"})
#: context patterns whose finding may be a lone common word ("Being aged 45", "Some states")
_LONE_WORD_PATTERNS = frozenset({"name_subject", "name_before_id", "name_for_end",
                                 "name_person_word"})
#: types whose values may be no individual's by their shape (shapes.public_value)
_SHAPE_CHECKED = frozenset({"URL", "PHONE", "AGE", "IP"})
#: context patterns loose enough to need them too ("for Leah Maldonado." but not "for Lyme Disease.")
_LOOSE_NAME_PATTERNS = frozenset({"name_for_end", "name_person_word"})
_PARTICLES = frozenset({"van", "von", "de", "der", "den", "da", "di", "du", "del", "della", "le",
                        "la", "bin", "bint", "al", "el", "ibn", "y", "dos", "das", "ter", "ten"})
_PLACE_BEFORE = re.compile(
    r"\b(?:in|from|at|to|near|of|outside|around|visiting|visited|lives|living|live|born|moved|"
    r"resident|resides|travel(?:l?ed)?|returned|city|town|county)\s+(?:the\s+)?$", re.IGNORECASE)
#: "of" after an amount or a kind is no place's ("A small amount of Deflux", "a dose of")
_AMOUNT_OF = re.compile(r"(?i)\b(?:amounts?|doses?|levels?|lots?|kinds?|types?|forms?|brands?|mixtures?|"
                        r"injections?|shots?|courses?|use|made|derived)[ \t]+(?:of|from)[ \t]+(?:the[ \t]+)?$")
_PLACE_AFTER = re.compile(r"^,\s*(?:[A-Z]{2}\b|[A-Z][a-z]+)")


#: relatives a possessive names ("Franciska's kid"), besides the people words of the config
_KIN = frozenset({"kid", "kids", "children", "baby", "family", "parents", "mom", "dad", "grandma",
                  "grandpa", "boss", "colleague", "roommate", "dog", "cat"})
#: before a place: an area word, a count, or another place and "and" ("south east", "four",
#: "in Lyon and", "Central Manchester and")
_AREA_BEFORE = re.compile(
    r"(?:\b(?i:north|south|east|west|central|greater|northern|southern|eastern|western|downtown|inner|outer|"
    r"metropolitan|rural|urban|suburban|coastal|one|two|three|four|five|six|seven|eight|nine|ten|\d+)"
    r"|\b(?:in|at|from|near|across|throughout|between|Central|Greater|North|South|East|West)"
    r"[ \t]+[A-Z][\w'\u2019-]+(?:[ \t]+[A-Z][\w'\u2019-]+)?[ \t]*(?:,|and|or|&))[ \t]+(?:the[ \t]+)?$")
#: after a place: a state's code with dots ("Washington, D.C."), another place and "and
#: surrounding" ("Paris and surrounding suburbs")
_STATE_CODE_AFTER = re.compile(r",[ \t]*(?:[A-Z]\.){2}|[ \t]+(?:and|or)[ \t]+(?:surrounding|nearby|neighbou?ring)\b")
#: a lower-case epithet joined to the first word of a name ("ex-Zombie Kastner")
_EPITHET = re.compile(r"[a-z]{2,6}-[^\W\d_][\w'\u2019]*[ \t]+(?=[A-Z])")
_BUILDING_NUMBER = re.compile(r"(?<![\w.,/:-])\d{1,6}[ \t]+$")
_UNIT = re.compile(r"(?i)(?:Apt|Apartment|Suite|Ste|Unit|Flat|Floor|Room)\.?\s*#?\d+[A-Za-z]?$")
#: a postcode at the end of an address line ("Uruguay 64677", "Mill Village B0J 2H0")
_POSTCODE_TAIL = re.compile(r"(?:^|\s)(\d{2,5}(?:[ -]\d{2,4})?(?:\s?[A-Z]{2})?|[A-Z]\d[A-Z] ?\d[A-Z]\d"
                            r"|[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2})$")


def _plausible_url(span: str) -> bool:
    """Presidio's URL pattern also matches "bilaterally.Th"; without a scheme or "www."
    a URL needs a lower-case, common top-level domain."""
    if re.match(r"(?i)(?:https?|ftp)://", span):
        return True
    if re.match(r"(?i)www\.", span):
        # a host needs a name besides "www" and its top-level domain ("www.nc" of "www.nc cam.nih.gov")
        return span.split("/", 1)[0].strip(".").count(".") >= 2
    host = span.split("/", 1)[0]
    tld = host.rsplit(".", 1)[-1] if "." in host else ""
    return tld in _COMMON_TLDS and host.islower() and len(host.split(".")[0]) > 1


_COMMON_TLDS = frozenset({"com", "org", "net", "edu", "gov", "mil", "int", "io", "info", "biz", "us",
                          "uk", "ca", "au", "de", "fr", "es", "it", "nl", "ch", "se", "no", "dk",
                          "fi", "be", "at", "ie", "nz", "in", "jp", "cn", "br", "mx", "ru", "pl",
                          "health", "care", "me", "co", "ly", "app", "dev", "ai"})


#: a house number standing on its own, and a word that may be a street's name
_HOUSE_NUMBER = re.compile(r"(?<!\S)\d{1,5}(?![\d/%:\w]|[.,]\d)")
_STREET_NAME_WORD = re.compile(r"[^\W\d_]+(?:['\u2019-][^\W\d_]+)*")
#: a value after its label: a colon, a number sign or a digit ("MRN: 3505", "Accession #CT25")
_LABEL_VALUE_AFTER = re.compile(r"[ \t]*(?:[:#]|\d)")


def _word_in(word: str, text: str) -> bool:
    """Whether ``word`` stands in ``text`` as a whole word (no letter, digit, ``_`` or ``-``
    beside it): ``re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text)`` without
    compiling a pattern per word (many words overflow ``re``'s cache, bench/anonymize.py)."""
    if not word:
        return False
    i = text.find(word)
    while i >= 0:
        j = i + len(word)
        if (i == 0 or not _word_char(text[i - 1])) and (j == len(text) or not _word_char(text[j])):
            return True
        i = text.find(word, i + 1)
    return False


def _word_char(c: str) -> bool:
    return c.isalnum() or c in "_-"


def _norm(s: str) -> str:
    return re.sub(r"\s+", " ", s.strip().strip(".,;:'\u2019\"()[]")).lower()


def _worth_analysing(text: str) -> bool:
    # PHI needs at least a letter or digit run; skips empty strings and pure punctuation
    return any(c.isalnum() for c in text)


def _outside(start: int, end: int, masks: list[tuple[int, int]]) -> list[tuple[int, int]]:
    pieces = [(start, end)]
    for ms, me in masks:
        if ms >= end or me <= start:
            continue
        pieces = [p for s, e in pieces for p in ((s, min(e, ms)), (max(s, me), e)) if p[1] > p[0]]
    return pieces


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    span = text[start:end]
    lead = " \t\r\n,;:" + ("(" if ")" not in span else "")
    tail = " \t\r\n,;:.*\u2020\u2021" + (")" if "(" not in span else "")
    while start < end and text[start] in lead:
        start += 1
    while end > start and text[end - 1] in tail:
        # keep the period of an abbreviation such as "St." or "Jr."
        if text[end - 1] == "." and re.search(r"(?:^|\s)[A-Z][a-z]?\.$", text[start:end]):
            break
        end -= 1
    # "The Mercy Hospital": the article is not part of the name
    m = re.match(r"(?:The|the)\s+", text[start:end])
    if m and end - start > m.end():
        start += m.end()
    # "Mary Johnson's results": the possessive stays, so the sentence survives the replacement
    m = re.search(r"[a-z](['\u2019]s?)$", text[start:end])
    if m:
        end -= len(m.group(1))
    return start, end


def _resolve_overlaps(found: list[Finding], priority: dict[str, int],
                      text: str | None = None) -> list[Finding]:
    """Keep non-overlapping findings: higher-priority type, then longer, then higher score."""
    if len(found) <= 1:
        return found
    rank = lambda f: (priority.get(f.type, 99), -(f.end - f.start), -f.score, f.start)  # noqa: E731
    kept: list[Finding] = []
    for f in sorted(found, key=rank):
        if all(f.end <= k.start or k.end <= f.start for k in kept):
            kept.append(f)
        elif f.type in ("NAME", "LOCATION") and text is not None:
            # what a name has beyond a facility that overlaps it is still a name ("Mr. Dalal
            # Great-Bend Regional": HOSPITAL takes "Great-Bend Regional", NAME keeps "Dalal")
            for s, e in _outside(f.start, f.end, [(k.start, k.end) for k in kept]):
                s, e = _trim(text, s, e)
                piece = text[s:e]
                if re.fullmatch(r"[^\W\d_][\w'\u2019.-]*(?:\s+[^\W\d_][\w'\u2019.-]*)*", piece) \
                        and len(piece) > 2 and piece[0].isupper():
                    kept.append(Finding(s, e, f.type, f.score, f.recognizer))
    # a lower-priority finding that covers a kept one fully (e.g. a NAME around a DATE)
    # is dropped above; sort by position for replacement
    return sorted(kept, key=lambda f: f.start)
