"""distillguard.sinks."""
