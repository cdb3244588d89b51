"""`python -m reconciler` runs the `reconcile` command."""

from reconciler.cli.main import main

raise SystemExit(main())
