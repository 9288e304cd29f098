import sys

from linrnn.cli import main

if __name__ == "__main__":  # a spawned worker process imports this module without running the command
    sys.exit(main())
