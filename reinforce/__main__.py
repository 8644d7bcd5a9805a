import sys

from reinforce.app.cli import main

sys.exit(main())
