"""The root of every Slicewatch exception; each subpackage subclasses it in its own ``errors``."""


class SlicewatchError(Exception):
    """Base class. Messages never carry payload content (prompts, outputs, feature values)."""


class ConfigError(SlicewatchError):
    """The configuration is invalid; the message names the key and the reason."""
