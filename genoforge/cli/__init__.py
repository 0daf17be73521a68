"""The command line: thin modules that parse flags, call one library function, and render.

Keep imports of torch/transformers inside command functions so `--help` and Tab completion stay
fast.
"""
