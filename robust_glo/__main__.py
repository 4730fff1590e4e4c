import sys

from robust_glo.cli import main

sys.exit(main())
