import sys

from hog.cli import main

sys.exit(main())
