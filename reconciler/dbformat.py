"""The format number of the state database (sqlite's `user_version`): a version of reconciler
refuses a database of a higher number (_sqlite.py), and so does `ps`'s reader, which opens it
without _sqlite's imports (runtime/native/containers/summaries.py, #21)."""

__all__ = ["FORMAT"]

# Raise it (and say how an older root is brought forward, in the store that changes) only for a
# change an older version would misread: a new table or an added column is not one.
FORMAT = 1
