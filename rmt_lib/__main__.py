import sys

from rmt_lib.cli import main

sys.exit(main())
