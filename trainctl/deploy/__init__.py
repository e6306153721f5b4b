"""Using a trained model outside training: predictions on new inputs (`trainctl predict`) and files a program
without trainctl can run (`trainctl export`).

`preprocess` holds what a checkpoint's model expects of its inputs and the training normalisation as a module;
`inputs` turns files (images, IDX, `.npy`, `.pt`) into batches of that shape; `predict` runs them and writes the
table; `export` writes ONNX and `torch.export` programs and checks them against PyTorch; `weights` writes and
reads safetensors files with the JSON that rebuilds their model.
"""

from __future__ import annotations

EXPORT_FORMATS: tuple[str, ...] = ("onnx", "pt2", "safetensors")  # checked before torch is imported
OUTPUT_FORMATS: tuple[str, ...] = ("csv", "json")
