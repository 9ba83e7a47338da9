"""Reading the GLUE TSV files in ../shared/data/glue the way their quirks
require (shared by the fixture scripts and the benchmarks): no CSV quoting
(quotes are text), a possible UTF-8 BOM (MRPC), no header in CoLA, no final
newline in CoLA dev, trailing spaces kept (SST-2)."""

import os

REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def glue_dir() -> str:
    """$PEFTCPP_SHARED/data/glue, by default ../shared beside the repo."""
    shared = os.environ.get("PEFTCPP_SHARED") or os.path.join(REPO, "..", "shared")
    return os.path.join(shared, "data", "glue")


def read_tsv(path: str, header: bool) -> list:
    """Rows of a GLUE TSV as lists of fields. Splits on '\\n' only:
    str.splitlines would also cut at U+2028, \\x1c and friends inside a
    sentence."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if text.startswith("\ufeff"):
        text = text[1:]
    rows = [line.rstrip("\r").split("\t") for line in text.split("\n")]
    if rows and rows[-1] == [""]:
        rows.pop()
    return rows[1:] if header else rows


def sst2_dev_sentences() -> list:
    """The 872 sentences of SST-2 dev, in file order."""
    rows = read_tsv(os.path.join(glue_dir(), "SST-2", "dev.tsv"), header=True)
    return [r[0] for r in rows]
