"""Writes data/tokenizer/unicode_tables.inc: the Unicode data that Hugging Face
tokenizers' BERT pipeline really uses, measured from the installed
`tokenizers` wheel, code point by code point.

Why measure instead of reading a Unicode database: HF answers these questions
with three frozen sources of different ages, and any single database (utf8proc,
Python's unicodedata) disagrees with them on hundreds of code points:
  * `unicode_categories` 0.1.1 (2016 tables): the Cc/Cf/Co set that
    clean_text removes, the P* set that BertPreTokenizer isolates, the Mn set
    that strip_accents drops;
  * `unicode-normalization-alignments` 0.1 (pre Unicode 13): NFD
    decompositions and canonical combining classes;
  * Rust's std (`char::to_lowercase`, newer than utf8proc's Unicode 15).
The C++ test `test_tokenizer` re-checks every code point against the wheel,
so a tokenizers upgrade that changes any of this fails loudly; rerun

    python data/tokenizer/gen_unicode_tables.py

with the venv's Python to refresh the tables.
"""

import os
import sys
import unicodedata

from tokenizers import normalizers, pre_tokenizers

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "unicode_tables.inc")
HANGUL_FIRST, HANGUL_LAST = 0xAC00, 0xD7A3


def all_code_points():
    return (cp for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF)


def bert(clean=False, chinese=False, strip=False, lower=False):
    return normalizers.BertNormalizer(clean_text=clean, handle_chinese_chars=chinese,
                                      strip_accents=strip, lowercase=lower)


def to_ranges(cps):
    out = []
    for cp in sorted(cps):
        if out and out[-1][1] == cp - 1:
            out[-1][1] = cp
        else:
            out.append([cp, cp])
    return out


def case_runs(mapping):
    """Groups cp -> cp + delta into runs first..last with a fixed stride."""
    runs = []
    for cp in sorted(mapping):
        delta = mapping[cp] - cp
        if runs:
            first, last, d, stride = runs[-1]
            step = cp - last
            if d == delta and step in (1, 2) and (stride == step or first == last):
                runs[-1] = [first, cp, d, step]
                continue
        runs.append([cp, cp, delta, 1])
    return runs


def measure():
    clean, lower = bert(clean=True), bert(lower=True)
    strip, nfd = bert(strip=True), normalizers.NFD()
    pre = pre_tokenizers.BertPreTokenizer()
    other, punct, marks, lower_map, decomp = set(), set(), set(), {}, {}
    special_lower = {}
    for cp in all_code_points():
        c = chr(cp)
        # clean_text drops U+0000, U+FFFD and is_other() minus \t \n \r.
        if clean.normalize_str(c) == "" and cp != 0xFFFD:
            other.add(cp)
        low = lower.normalize_str(c)
        if low != c:
            if len(low) == 1:
                lower_map[cp] = ord(low)
            else:
                special_lower[cp] = [ord(x) for x in low]
        d = nfd.normalize_str(c)
        if d != c:
            if not HANGUL_FIRST <= cp <= HANGUL_LAST:
                decomp[cp] = [ord(x) for x in d]
        elif strip.normalize_str(c) == "":
            marks.add(cp)  # only NFD-stable code points reach the Mn filter
        if len(pre.pre_tokenize_str("a" + c + "a")) == 3:
            punct.add(cp)
    other |= {0x09, 0x0A, 0x0D}
    return other, punct, marks, lower_map, special_lower, decomp


def measure_ccc():
    """Canonical combining classes as the wheel's NFD orders them.

    CCC values never change once assigned, so the wheel's value for a code
    point is either Python's or 0 (unknown to its older tables); a swap
    against a mark of class 1 (U+0334) or 230 (U+0301) tells which.
    """
    nfd = normalizers.NFD()
    out = {}
    for cp in all_code_points():
        c = chr(cp)
        v = unicodedata.combining(c)
        if v == 0 or nfd.normalize_str(c) != c:
            continue
        if v > 1:
            known = nfd.normalize_str(c + "\u0334") == "\u0334" + c
        else:
            known = nfd.normalize_str("\u0301" + c) == c + "\u0301"
        if known:
            out[cp] = v
    return out


def fmt_items(items, indent="    ", width=80):
    lines, line = [], indent
    for it in items:
        piece = it + ","
        if len(line) + len(piece) + 1 > width and line.strip():
            lines.append(line.rstrip())
            line = indent
        line += piece + " "
    if line.strip():
        lines.append(line.rstrip())
    return "\n".join(lines)


def main() -> int:
    other, punct, marks, lower_map, special_lower, decomp = measure()
    ccc = measure_ccc()
    if list(special_lower) != [0x130]:
        sys.exit(f"expected U+0130 as the only multi-char lowercase, got "
                 f"{[hex(c) for c in special_lower]}")
    ccc_runs = []
    for cp in sorted(ccc):
        if ccc_runs and ccc_runs[-1][1] == cp - 1 and ccc_runs[-1][2] == ccc[cp]:
            ccc_runs[-1][1] = cp
        else:
            ccc_runs.append([cp, cp, ccc[cp]])
    data, index = [], []
    for cp in sorted(decomp):
        index.append((cp, len(data), len(decomp[cp])))
        data.extend(decomp[cp])

    h = lambda v: f"0x{v:X}"
    out = [
        "// Generated by data/tokenizer/gen_unicode_tables.py from tokenizers "
        f"{__import__('tokenizers').__version__};",
        "// do not edit. Included by data/tokenizer/unicode.cpp only.",
        "",
        "// Cc, Cf, Co as unicode_categories 0.1.1 has them (clean_text's "
        "is_other).",
        "constexpr CodeRange kOther[] = {",
        fmt_items(f"{{{h(a)}, {h(b)}}}" for a, b in to_ranges(other)),
        "};",
        "",
        "// ASCII punctuation or P* (BertPreTokenizer's is_bert_punc).",
        "constexpr CodeRange kPunctuation[] = {",
        fmt_items(f"{{{h(a)}, {h(b)}}}" for a, b in to_ranges(punct)),
        "};",
        "",
        "// Mn among NFD-stable code points (what strip_accents drops).",
        "constexpr CodeRange kNonspacingMark[] = {",
        fmt_items(f"{{{h(a)}, {h(b)}}}" for a, b in to_ranges(marks)),
        "};",
        "",
        "// char::to_lowercase, one-to-one part: first..last step stride "
        "-> +delta.",
        "constexpr CaseRun kLowercase[] = {",
        fmt_items(f"{{{h(a)}, {h(b)}, {d}, {s}}}"
                  for a, b, d, s in case_runs(lower_map)),
        "};",
        "",
        "// Canonical combining classes known to the NFD of the wheel.",
        "constexpr CombiningRun kCombiningClass[] = {",
        fmt_items(f"{{{h(a)}, {h(b)}, {v}}}" for a, b, v in ccc_runs),
        "};",
        "",
        "// Full canonical decompositions (Hangul syllables are algorithmic).",
        "constexpr char32_t kDecompositionData[] = {",
        fmt_items(h(v) for v in data),
        "};",
        "constexpr Decomposition kDecomposition[] = {",
        fmt_items(f"{{{h(cp)}, {o}, {n}}}" for cp, o, n in index),
        "};",
        "",
    ]
    with open(OUT, "w") as f:
        f.write("\n".join(out))
    print(f"[gen_unicode_tables] wrote {OUT}: {len(to_ranges(other))} other, "
          f"{len(to_ranges(punct))} punct, {len(to_ranges(marks))} Mn ranges, "
          f"{len(case_runs(lower_map))} case runs, {len(ccc_runs)} ccc runs, "
          f"{len(index)} decompositions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
