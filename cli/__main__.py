"""`python -m mmrt.cli`, as `mmrt`."""

import sys

from mmrt.cli.entry import main

sys.exit(main())
