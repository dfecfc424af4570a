"""Drop-in modules on fastpretrain's ops, with torch.nn / timm constructor and forward conventions."""

from fastpretrain.nn import functional
from fastpretrain.nn.attention import MultiheadSelfAttention
from fastpretrain.nn.padding import repad, unpad

__all__ = ["MultiheadSelfAttention", "functional", "repad", "unpad"]
