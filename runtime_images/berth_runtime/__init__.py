"""Berth's runtime: what runs in the pods — the download Job, the model server core, reporting."""
