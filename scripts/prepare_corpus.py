"""Cleans the Python documentation's reStructuredText sources and splits them by document.

Deterministic: documents are ordered by the SHA-256 of their relative path; the first ones in that
order, up to --heldout-bytes, form the held-out evaluation text; all others are the training set.
No document is in both. Cleaning keeps the English and the code examples and removes reST markup
that is not text: roles (:func:`x` -> x), link targets, index and comment directives.
"""
import argparse
import hashlib
import pathlib
import re

ROLE = re.compile(r":[a-z][a-z:+-]*:`([^`<]*?)(?:\s*<[^`>]*>)?`")
LINK = re.compile(r"`([^`<]+?)\s*<[^`>]+>`_{1,2}")
DROP_LINE = re.compile(r"^\s*\.\. (?:_[^:]+:|index::|sectionauthor::|moduleauthor::|highlight::|versionadded::\s*$|\|)")


def clean(text: str) -> str:
    out = []
    skipping_block = False
    for line in text.splitlines():
        if skipping_block:
            if line.strip() == "" or line.startswith((" ", "\t")):
                continue
            skipping_block = False
        if DROP_LINE.match(line) or re.match(r"^\s*\.\.\s*$", line):
            skipping_block = True
            continue
        line = ROLE.sub(r"\1", line)
        line = LINK.sub(r"\1", line)
        line = line.replace("``", "`")
        out.append(line.rstrip())
    text = "\n".join(out)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip() + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sources", required=True, type=pathlib.Path)
    ap.add_argument("--deb", required=True)
    ap.add_argument("--out", required=True, type=pathlib.Path)
    ap.add_argument("--eval-dir", required=True, type=pathlib.Path)
    ap.add_argument("--heldout-bytes", type=int, default=250_000)
    args = ap.parse_args()

    files = sorted(args.sources.rglob("*.rst.txt"))
    if not files:
        raise SystemExit(f"no *.rst.txt under {args.sources}")
    docs = []
    for f in files:
        rel = f.relative_to(args.sources).as_posix()
        if rel in ("copyright.rst.txt", "license.rst.txt"):
            continue  # legal text, not prose
        text = clean(f.read_text(encoding="utf-8"))
        if len(text) < 200:
            continue
        docs.append((hashlib.sha256(rel.encode()).hexdigest(), rel, text))
    docs.sort()

    train_dir = args.out / "train"
    train_dir.mkdir(parents=True, exist_ok=True)
    for old in train_dir.glob("*.txt"):
        old.unlink()
    heldout, held_bytes, manifest = [], 0, []
    for digest, rel, text in docs:
        name = rel.replace("/", "__").removesuffix(".rst.txt") + ".txt"
        sha = hashlib.sha256(text.encode()).hexdigest()
        if held_bytes < args.heldout_bytes:
            heldout.append(text)
            held_bytes += len(text.encode())
            manifest.append(("heldout", rel, len(text.encode()), sha))
        else:
            (train_dir / name).write_text(text, encoding="utf-8")
            manifest.append(("train", rel, len(text.encode()), sha))
    held_text = "\n".join(heldout)
    (args.out / "heldout.txt").write_text(held_text, encoding="utf-8")
    lines = [f"# source: Debian package {args.deb}, usr/share/doc/python3.11/html/_sources (PSF License)",
             "# split\tdocument\tbytes_after_cleaning\tsha256_after_cleaning"]
    lines += ["\t".join(map(str, m)) for m in sorted(manifest)]
    (args.out / "MANIFEST.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    args.eval_dir.mkdir(parents=True, exist_ok=True)
    (args.eval_dir / "python-doc-heldout.txt").write_text(held_text, encoding="utf-8")
    (args.eval_dir / "python-doc-MANIFEST.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    n_train = sum(1 for m in manifest if m[0] == "train")
    train_bytes = sum(m[2] for m in manifest if m[0] == "train")
    print(f"train: {n_train} documents, {train_bytes} bytes; held-out: {len(heldout)} documents, {held_bytes} bytes")


if __name__ == "__main__":
    main()
