import sys

from miro_bridge.cli import main

sys.exit(main())
