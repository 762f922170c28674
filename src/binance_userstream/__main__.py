"""`python -m binance_userstream`: the same as the `binance-userstream` command."""

import sys

from binance_userstream._cli import main

sys.exit(main())
