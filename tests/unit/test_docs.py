"""Every condition reason the operator can set is documented in doc/operations.md."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ROOT / "operator" / "berth_operator" / "controller"
PATTERNS = (
    r'Verdict\(\s*"(?:True|False|Unknown)",\s*"([A-Z][A-Za-z]+)"',
    r'PodProblem\(\s*"([A-Z][A-Za-z]+)"',
    r'SecretCheck\(\s*"([A-Z][A-Za-z]+)"',
    r'"reason":\s*"([A-Z][A-Za-z]+)"',
    r'\bor "([A-Z][A-Za-z]+)"',  # fallbacks, as in `failed.get("reason") or "DownloadFailed"`
)


def reasons_in_code() -> set[str]:
    text = "\n".join(p.read_text() for p in SOURCES.glob("*.py"))
    found = {m for pattern in PATTERNS for m in re.findall(pattern, text)}
    return {r for r in found if r}


def test_every_reason_is_in_the_troubleshooting_table():
    table = (ROOT / "doc" / "operations.md").read_text().split("## Troubleshooting by reason")[1]
    documented = set(re.findall(r"^\| `([A-Za-z]+)` \|", table, flags=re.M))
    missing = reasons_in_code() - documented
    assert len(reasons_in_code()) >= 15
    assert not missing, f"reasons missing from doc/operations.md: {sorted(missing)}"
