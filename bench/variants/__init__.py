"""Ways of running a transformer: fp32, fp16/bf16, int8, onnx, onnx-int8, distilled, and compositions."""
