"""`make bench`: figures measured on this machine, each with a ratio to a same-run baseline."""
