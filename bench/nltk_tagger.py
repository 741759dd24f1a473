"""Install NLTK's English POS tagger from its pickle, for the bench's philter-lite anchor.

philter-lite (Philter) tags every note with ``nltk.pos_tag``, which in nltk 3.9+ reads three
JSON files::

    $NLTK_DATA/taggers/averaged_perceptron_tagger_eng/averaged_perceptron_tagger_eng.weights.json
                                                      averaged_perceptron_tagger_eng.tagdict.json
                                                      averaged_perceptron_tagger_eng.classes.json

That data is not on PyPI. The nltk/nltk_data repository holds the model as
``packages/taggers/averaged_perceptron_tagger.zip``: one pickle of ``(weights, tagdict,
classes)`` (sha256 of the zip used by the bench: e1f13cf2532daadfd6f3bc481a49859f0b8ea6432ccdcd83e6a49a5f19008de9).
This script converts that zip, or the pickle inside it, given by path, into the three JSON
files. The pickle is read by an unpickler that builds dicts, lists, tuples, strings, numbers
and sets only: nothing in the file can name a function to call.

Bench-only: the package never ships, downloads or loads this data.

    python bench/nltk_tagger.py PATH/averaged_perceptron_tagger.zip [--nltk-data DIR]
    python bench/nltk_tagger.py          # only says whether the files are installed

DIR defaults to $NLTK_DATA (its first entry), else ~/nltk_data. Run the bench with the same
NLTK_DATA.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pickle
import sys
import zipfile
from pathlib import Path

LANG = "eng"
TAGGER_DIR = f"taggers/averaged_perceptron_tagger_{LANG}"
FILES = tuple(f"averaged_perceptron_tagger_{LANG}.{part}.json" for part in ("weights", "tagdict", "classes"))


class _DataOnly(pickle.Unpickler):
    """Unpickles plain data: the one global a tagger pickle names is ``set``."""

    ALLOWED = {("builtins", "set"), ("__builtin__", "set"), ("builtins", "frozenset"),
               ("__builtin__", "frozenset")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refused: the tagger pickle names {module}.{name}")
        return set if name == "set" else frozenset


def read_model(path: Path) -> tuple[dict, dict, list]:
    """(weights, tagdict, classes) from the zip of nltk_data or the pickle inside it."""
    data = Path(path).read_bytes()
    if zipfile.is_zipfile(io.BytesIO(data)):
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            names = [n for n in z.namelist() if n.endswith(".pickle")]
            if len(names) != 1:
                raise ValueError(f"{path}: expected one .pickle inside, found {names}")
            data = z.read(names[0])
    obj = _DataOnly(io.BytesIO(data), encoding="latin1").load()
    if not (isinstance(obj, tuple) and len(obj) == 3):
        raise ValueError(f"{path}: not a (weights, tagdict, classes) tuple")
    weights, tagdict, classes = obj
    if not (isinstance(weights, dict) and isinstance(tagdict, dict)):
        raise ValueError(f"{path}: weights and tagdict must be dicts")
    return weights, tagdict, sorted(classes)


def default_nltk_data() -> Path:
    env = os.environ.get("NLTK_DATA", "")
    first = env.split(os.pathsep)[0] if env else ""
    return Path(first) if first else Path.home() / "nltk_data"


def convert(path: Path, nltk_data: Path | None = None) -> Path:
    """Writes the three JSON files; returns their folder."""
    weights, tagdict, classes = read_model(path)
    out = Path(nltk_data or default_nltk_data()) / TAGGER_DIR
    out.mkdir(parents=True, exist_ok=True)
    for name, obj in zip(FILES, (weights, tagdict, classes)):
        tmp = out / (name + ".tmp")
        tmp.write_text(json.dumps(obj), encoding="utf-8")
        tmp.replace(out / name)
    return out


def installed(nltk_data_paths: list[str] | None = None) -> Path | None:
    """The folder holding the three JSON files on NLTK's search path, or None."""
    if nltk_data_paths is None:
        try:
            import nltk.data

            nltk_data_paths = list(nltk.data.path)
        except ImportError:
            nltk_data_paths = [str(default_nltk_data())]
    for root in nltk_data_paths:
        d = Path(root) / TAGGER_DIR
        if all((d / f).is_file() for f in FILES):
            return d
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 epilog="See the module docstring for where the zip comes from.")
    ap.add_argument("source", type=Path, nargs="?",
                    help="averaged_perceptron_tagger.zip (or its .pickle); without it, only say "
                         "whether the JSON files are on NLTK's search path")
    ap.add_argument("--nltk-data", type=Path, default=None,
                    help="NLTK data folder to write into (default: $NLTK_DATA, else ~/nltk_data)")
    args = ap.parse_args(argv)
    if args.source is None:  # `make bench` runs every bench script without arguments
        found = installed()
        print(f"NLTK English tagger JSON: {found}" if found else
              f"NLTK English tagger JSON not found on NLTK's search path; convert the nltk_data zip: "
              f"python bench/nltk_tagger.py PATH/averaged_perceptron_tagger.zip")
        return 0
    out = convert(args.source, args.nltk_data)
    print(f"wrote {', '.join(FILES)} to {out}")
    try:
        import nltk.data
        from nltk.tag.perceptron import PerceptronTagger
    except ImportError:
        print("nltk not installed: conversion not checked")
        return 0
    root = str(out.parent.parent)
    if root not in nltk.data.path:  # nltk reads models only from its search path
        nltk.data.path.insert(0, root)
        print(f"note: {root} is not on NLTK's search path: run the bench with NLTK_DATA={root}")
    tagger = PerceptronTagger(lang=LANG)
    print("check:", tagger.tag("The patient was seen at the clinic .".split()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
