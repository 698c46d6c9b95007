"""The shop's bounded contexts. Each module's `contract.py` is its only public file."""
