"""The `peregrine` command line."""
