"""distillguard: streaming detection of model-extraction / distillation campaigns."""
