from .checkpoint import AtomicCheckpointer
from .defaults import create_ddp_model, default_argument_parser, resolve_device, setup
from .launch import launch

__all__ = [
    "AtomicCheckpointer", "create_ddp_model", "default_argument_parser", "launch",
    "resolve_device", "setup",
]
