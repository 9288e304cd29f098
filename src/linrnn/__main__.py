import sys

from linrnn.cli import main

sys.exit(main())
