"""distillguard.streams."""
