"""Publish a dataset folder (or an in-memory ``datasets.Dataset``) to the Hugging Face Hub.

Five gates run first and are all reported; publishing refuses on any failure:

1. the residual-PHI and credential audit of every file to upload passed (``upload_audit``,
   under a policy the folder can only make stricter: ``policy``);
2. every source's licence allows publishing a derivative (``schemas/licenses.json``);
3. records from hosted models whose terms limit training on outputs are flagged in the card
   (``schemas/model_terms.json``);
4. the manifest shows anonymize, dedup and validate ran, with their counts;
5. the card is complete and its YAML parses with ``huggingface_hub.DatasetCard``.

The repo is created private by default, and everything goes up in one commit.
"""

from instructkit.hub.publisher import PublishResult, UploadFile, collect_files, publish, publish_dataset
from instructkit.hub.gates import GateResult, run_gates

__all__ = ["publish", "publish_dataset", "PublishResult", "GateResult", "UploadFile",
           "collect_files", "run_gates"]
