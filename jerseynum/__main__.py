import sys

from jerseynum.cli import main

sys.exit(main())
