"""Data: splits that batch themselves on the device, batched transforms, and one module per data source (IDX,
CIFAR pickles, image folders, generated sets) plus where files are looked for. No module imports torchvision
at import time."""
