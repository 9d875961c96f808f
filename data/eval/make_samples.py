#!/usr/bin/env python3
"""Makes the small evaluation samples `casrap eval` tests use, from the held-out text:

- wikitext-sample.raw: the first three held-out documents in WikiText-2 raw layout (a blank
  line, ` = Title = `, a blank line, then paragraphs each followed by a blank line), about 12 KB.

Deterministic; run from anywhere: python3 data/eval/make_samples.py
"""
import pathlib
import re

here = pathlib.Path(__file__).resolve().parent
text = (here / "python-doc-heldout.txt").read_text(encoding="utf-8")
# Documents start with a title line underlined by '=' (reST).
docs = re.split(r"\n(?=[^\n]+\n=+\n)", text)
out = []
for doc in docs[:3]:
    lines = doc.strip("\n").split("\n")
    title, body = lines[0].strip(), "\n".join(lines[2:])
    out.append(f"\n = {title} = \n\n")
    for para in re.split(r"\n\s*\n", body):
        para = " ".join(l.strip() for l in para.split("\n") if l.strip())
        if para:
            out.append(f" {para} \n\n")
(here / "wikitext-sample.raw").write_text("".join(out)[:12000].rsplit("\n\n", 1)[0] + "\n\n", encoding="utf-8")
print("wrote", here / "wikitext-sample.raw")
