"""Steps over streams of records: the base classes, and the stages a recipe runs after
its builders (anonymize, dedup, quality/validate, judge, audit, bias report)."""
