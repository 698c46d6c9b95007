"""Orders: the order record, the place-order and cancel-order sagas, and the order API."""
