"""The strategy tables in README.md and docs/strategies.md are generated from the committed JSON
(search/bench/doc_tables.py): every one matches what its JSON makes, and a changed figure is caught."""
from __future__ import annotations

import subprocess
import sys

from search.bench import doc_tables
from tests.helpers import ROOT


def test_every_generated_table_in_the_docs_is_what_its_json_makes():
    blocks = 0
    for doc in doc_tables.DOCS:
        text = (ROOT / doc).read_text()
        blocks += len(doc_tables.BLOCK.findall(text))
        assert doc_tables.refresh(text) == text, f"{doc}: run python -m search.bench tables"
    assert blocks >= 3  # the README's strategy table, the docs' simulate tables and the real paired searches


def test_a_figure_changed_by_hand_is_caught_and_rewritten(tmp_path, monkeypatch):
    doc = next(d for d in doc_tables.DOCS if doc_tables.BLOCK.search((ROOT / d).read_text()))
    text = (ROOT / doc).read_text()
    body = doc_tables.BLOCK.search(text).group("body")
    edited = text.replace(body, body.replace("1", "7", 1))
    assert edited != text and doc_tables.refresh(edited) == text
    monkeypatch.setattr(doc_tables, "ROOT", tmp_path)
    for d in doc_tables.DOCS:
        (tmp_path / d).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / d).write_text((ROOT / d).read_text())
    (tmp_path / "docs").mkdir(exist_ok=True)
    for json_file in (ROOT / "docs").glob("*.json"):
        (tmp_path / "docs" / json_file.name).write_text(json_file.read_text())
    (tmp_path / doc).write_text(edited)
    assert doc_tables.main(["--check"]) == 1 and (tmp_path / doc).read_text() == edited
    assert doc_tables.main([]) == 0 and (tmp_path / doc).read_text() == text


def test_the_command_checks_the_shipped_docs():
    r = subprocess.run([sys.executable, "-m", "search.bench", "tables", "--check"], capture_output=True, text=True,
                       cwd=ROOT, timeout=120)
    assert r.returncode == 0 and "matches its JSON" in r.stdout, r.stdout + r.stderr
