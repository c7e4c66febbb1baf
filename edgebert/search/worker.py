"""`python -m edgebert.search.worker CONFIG STAGE INDEX`: one extra trial process of a search stage.

Started by the coordinator (`edgebert search --workers K`); errors become one line and exit 1."""

import sys

from edgebert.errors import EdgebertError
from edgebert.search.progressive import worker_main

if __name__ == "__main__":
    try:
        sys.exit(worker_main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
    except EdgebertError as e:
        print(f"edgebert search worker: error: {e}", file=sys.stderr)
        sys.exit(1)
