"""Language-model recommenders: llm-two-tower (two_tower.py), llm-pairwise (pairwise.py), llm-rerank (rerank.py).

Shared pieces: profile.py (user profile texts, train-only hold-out pairs), projection.py (linear maps on
frozen embeddings, InfoNCE), finetune.py (contrastive fine-tuning of the transformer), common.py (encoder
building, stats, footprint, per-request work for FLOPs, quality-gate keys). scripts/llm_study.py (outside the
package) prints the quality figures behind the LLM issue's acceptance items. Every transformer runs through bench.variants, so each
recommender works under every variant (fp32, int8, onnx, onnx-int8, distilled...) on every device.
"""
