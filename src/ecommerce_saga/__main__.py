"""`python -m ecommerce_saga` runs the command-line interface."""

from ecommerce_saga.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
