"""Builders: steps that turn source rows, seed tasks or retrieved passages into records
(template, synthetic, rag). Not to be confused with the top-level ``builders/`` folder,
which holds recipes."""
