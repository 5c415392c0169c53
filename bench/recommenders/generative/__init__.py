"""Decoder (generative) recommenders: causal transformers over item sequences or prompts."""
