"""`make bench` entry for the load benchmark: runs bench/load with its defaults (~8 min).

Options go to `python -m bench.load.run --help`; see bench/README.md "Load (bench/load)".
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.load.run import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
