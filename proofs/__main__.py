"""``python -m proofs``: see :mod:`proofs.cli`."""

from .cli import main

raise SystemExit(main())
