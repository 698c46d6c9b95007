"""The database: the MongoDB connection (`connection`), and the embedded server (`embedded`)."""
