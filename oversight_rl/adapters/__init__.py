"""Optional integrations, each loaded by name when a setting asks for it: Weights & Biases, TensorBoard, Ray."""
