"""The seed pool: clinician-style tasks that Self-Instruct and Evol-Instruct start from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from instructkit._exceptions import SourceError
from instructkit._resources import prompts_dir
from instructkit.records import content_hash

__all__ = ["SeedTask", "SeedPool", "load_seed_pool", "DEFAULT_SEED_POOL"]

DEFAULT_SEED_POOL = "synthetic/seed_tasks.yaml"


@dataclass(frozen=True)
class SeedTask:
    id: str
    task: str
    instruction: str
    input: str
    output: str


@dataclass
class SeedPool:
    name: str
    license: str
    file: str
    categories: dict[str, str]
    tasks: list[SeedTask]

    @property
    def hash(self) -> str:
        return content_hash([t.__dict__ for t in self.tasks], length=16)

    def by_category(self, category: str) -> list[SeedTask]:
        return [t for t in self.tasks if t.task == category]

    def source(self, record_id: str, location: str | None = None) -> dict[str, Any]:
        return {"name": self.name, "license": self.license, "record_id": record_id,
                "location": location}


def load_seed_pool(path: str | Path | None = None) -> SeedPool:
    p = Path(path) if path else prompts_dir() / DEFAULT_SEED_POOL
    if not p.is_file():
        raise SourceError("seed task file not found", file=str(p))
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise SourceError(f"not valid YAML: {exc}", file=str(p)) from None
    for key in ("name", "license", "tasks"):
        if key not in data:
            raise SourceError("missing top-level key", file=str(p), field=key)
    tasks, seen = [], set()
    for i, t in enumerate(data["tasks"]):
        for key in ("id", "task", "instruction", "output"):
            if not isinstance(t, dict) or not str(t.get(key) or "").strip():
                raise SourceError(f"seed task {i + 1} lacks '{key}'", file=str(p), field=f"tasks[{i}].{key}")
        if t["id"] in seen:
            raise SourceError(f"duplicate seed task id '{t['id']}'", file=str(p), field=f"tasks[{i}].id")
        seen.add(t["id"])
        tasks.append(SeedTask(id=str(t["id"]), task=str(t["task"]), instruction=str(t["instruction"]),
                              input=str(t.get("input") or ""), output=str(t["output"])))
    cats = dict(data.get("categories") or {})
    for t in tasks:
        cats.setdefault(t.task, t.task.replace("_", " "))
    return SeedPool(name=str(data["name"]), license=str(data["license"]), file=str(p),
                    categories=cats, tasks=tasks)
