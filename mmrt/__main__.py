import sys

from mmrt.cli import main

sys.exit(main())
