"""``python -m raresift.simulate CONFIG`` / ``... report RESULTS``: aliases of ``raresift simulate``
and ``raresift report`` (the commands recorded in older reports)."""

import sys

from raresift.cli import main

if __name__ == "__main__":
    argv = sys.argv[1:]
    sys.exit(main(argv if argv[:1] == ["report"] else ["simulate", *argv]))
