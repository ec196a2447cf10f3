"""The report step's generated section: inserted once after the protocol, replaced in place after that."""

from train.doc_blocks import replace_section
from train.report import SECTION

README = "# title\n\n## Evaluation protocol\ntext\n\n## Layout\nlayout\n"


def test_section_goes_after_the_protocol_and_is_replaced_in_place():
    first = replace_section(README, SECTION, f"{SECTION}\n\nfigures 1\n", after="## Evaluation protocol")
    assert first.index("## Evaluation protocol") < first.index(SECTION) < first.index("## Layout")
    second = replace_section(first, SECTION, f"{SECTION}\n\nfigures 2\n", after="## Evaluation protocol")
    assert second.count(SECTION) == 1 and "figures 2" in second and "figures 1" not in second
    assert second.replace("figures 2", "figures 1") == first  # nothing else moved
