"""The one writer of generated Markdown blocks: marked blocks and whole sections, replaced in place."""

from __future__ import annotations

import pytest

from train.doc_blocks import markers, replace_marked, replace_section, rewrite

README = "# Title\n\n## One\ntext\n<!-- figures:begin -->\nold\n<!-- figures:end -->\nafter\n\n## Two\nmore\n"


def test_a_marked_block_is_replaced_and_nothing_else():
    begin, end = markers("figures")
    new = replace_marked(README, "figures", f"{begin}\nnew 1\nnew 2\n{end}")
    assert new == README.replace("old", "new 1\nnew 2")
    assert replace_marked(new, "figures", f"{begin}\nold\n{end}") == README
    with pytest.raises(ValueError, match="no <!-- other:begin -->"):
        replace_marked(README, "other", "x")


def test_a_section_is_replaced_or_added_after_its_anchor():
    replaced = replace_section(README, "## One", "## One\nfresh\n")
    assert replaced == "# Title\n\n## One\nfresh\n\n## Two\nmore\n"
    added = replace_section(README, "## Three", "## Three\nnew\n", after="## One")
    assert added.index("## One") < added.index("## Three") < added.index("## Two")


def test_rewrite_keeps_the_file_mode(tmp_path):
    path = tmp_path / "README.md"
    path.write_text(README)
    path.chmod(0o644)
    rewrite(path, lambda text: text.replace("more", "less"))
    assert path.read_text().endswith("less\n") and path.stat().st_mode & 0o777 == 0o644
