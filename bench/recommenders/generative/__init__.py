"""Decoder (generative) recommenders: causal transformers over item sequences (`llm-generative`, trained here) or
prompts (`llm-decoder-rank`, decoder-LLM ranking of retriever candidates, cost-only at real architectures)."""
