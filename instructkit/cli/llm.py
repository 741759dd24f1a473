"""``instructkit llm-check``: is the configured model reachable, and does it answer JSON?"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("llm-check")
    def llm_check(
        recipe: Optional[str] = typer.Argument(None, help="Recipe whose `llm:` section to use (default: the embedded model)."),
        cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Response cache folder."),
    ) -> None:
        """Start (or reach) the recipe's LLM endpoint, ask one JSON question, print the usage ledger."""
        from instructkit.context import RunContext
        from instructkit.llm import JsonRequest, llm_from_context

        llm_cfg = {}
        if recipe:
            from instructkit.recipe.load import load_recipe

            llm_cfg = load_recipe(recipe).data.get("llm") or {}
        ctx = RunContext(recipe={"llm": llm_cfg}, cache_dir=cache_dir)
        try:
            client = llm_from_context(ctx)
            schema = {"type": "object", "required": ["ok"], "additionalProperties": False,
                      "properties": {"ok": {"type": "boolean"}}}
            res = client.complete_json(JsonRequest(
                messages=[{"role": "user", "content": 'Reply with the JSON object {"ok": true}.'}],
                schema=schema, params={"temperature": 0.0, "max_tokens": 16}, seed=0,
                prompt_id="llm-check"))
            typer.echo(f"endpoint: {client.base_url or '(embedded, not started: answered from cache)'}")
            typer.echo(f"model: {client.model} ({client.provider})")
            typer.echo(f"structured output: {'ok' if res.ok else 'FAILED: ' + str(res.error)}"
                       f"{' (cached)' if res.cached else ''}")
            typer.echo(json.dumps(client.ledger.as_dict(), indent=2))
            if not res.ok:
                raise typer.Exit(1)
        finally:
            ctx.close()
