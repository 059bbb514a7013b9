"""`make bench`: the performance harness of llmsec-aio (see bench/README.md)."""
