"""distillguard.models."""
