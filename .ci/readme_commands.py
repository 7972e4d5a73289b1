"""Reads the commands a new user runs out of README.md, so that CI runs them as written.

    python .ci/readme_commands.py user    # "Two commands", first block, shrunk with --smoke
    python .ci/readme_commands.py test    # "Two commands", second block, as written
    python .ci/readme_commands.py after   # "After training", one command a line, shrunk

Each mode prints shell command lines on stdout. When the README's blocks no
longer have the shape CI knows how to run (a block more or less, an install
step that is not a bare `pip install -e .`, a job that is not a recipe module,
an after-training tool CI does not know how to shrink), it prints why on
stderr and exits 2: CI then fails instead of silently running something else.
"""

import os
import re
import sys

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")

# The default job, as the first block must read: an optional parenthesised
# system-package step, the bare install (no extras), then one recipe module.
USER = re.compile(
    r"^(?P<setup>\([^)]*\);\s*)?pip install -e \. && "
    r"(?P<job>python -m lcreg_keras\.recipes\.[a-z0-9_]+)$"
)
TEST = re.compile(r"^pip install -e \"\.\[test\]\" && python tools/run_tests\.py$")
# After-training tools and the flag that shrinks each to the --smoke run's size.
SHRINK = {"tools/evaluate.py": "--smoke", "tools/latent_maps.py": "--smoke", "tools/export.py": ""}


def fail(message):
    sys.stderr.write(f"readme_commands: {message}\n")
    sys.exit(2)


def section_blocks(text, title):
    """The ```bash blocks of the `## title...` section, each as a list of lines."""
    match = re.search(rf"^## {re.escape(title)}.*?$(.*?)(?=^## |\Z)", text, re.M | re.S)
    if not match:
        fail(f'README.md has no "## {title}" section')
    blocks = re.findall(r"^```bash\n(.*?)^```", match.group(1), re.M | re.S)
    return [[line for line in block.splitlines() if line.strip()] for block in blocks]


def commands(mode, text):
    if mode in ("user", "test"):
        blocks = section_blocks(text, "Two commands")
        if len(blocks) != 2 or any(len(b) != 1 for b in blocks):
            fail('"Two commands" must hold exactly two one-line bash blocks; found '
                 f"{[len(b) for b in blocks]} lines in {len(blocks)} blocks")
        line = blocks[0 if mode == "user" else 1][0].strip()
        if mode == "user":
            if not USER.match(line):
                fail(f"the first command does not read `[(...); ]pip install -e . && python -m "
                     f"lcreg_keras.recipes.<name>`: {line!r}")
            return [line + " --smoke"]
        if not TEST.match(line):
            fail(f'the second command does not read `pip install -e ".[test]" && python '
                 f"tools/run_tests.py`: {line!r}")
        return [line]
    if mode == "after":
        blocks = section_blocks(text, "After training")
        if len(blocks) != 1:
            fail(f'"After training" must hold one bash block; found {len(blocks)}')
        out = []
        for line in blocks[0]:
            words = line.split()
            if len(words) < 2 or words[0] != "python" or words[1] not in SHRINK:
                fail(f"after-training line CI does not know how to shrink: {line!r} "
                     f"(known: {', '.join(sorted(SHRINK))})")
            out.append(" ".join([line.strip()] + ([SHRINK[words[1]]] if SHRINK[words[1]] else [])))
        if not out:
            fail('"After training" has an empty block')
        return out
    fail(f"unknown mode {mode!r} (user, test, after)")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        fail("usage: readme_commands.py user|test|after")
    with open(README, encoding="utf-8") as handle:
        print("\n".join(commands(sys.argv[1], handle.read())))
