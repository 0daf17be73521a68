"""Tokenizers: the built-in token inventory, DNA/target encoding, BPE training and editing."""
