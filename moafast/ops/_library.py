"""The `moafast` torch.library namespace that every op is defined in."""

import torch

library = torch.library.Library("moafast", "DEF")
