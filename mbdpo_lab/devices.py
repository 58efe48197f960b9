"""Which torch devices this machine offers, in words a user can choose from."""
from __future__ import annotations

import torch


def device_options() -> list[tuple[str, str]]:
    """(label, torch device) choices: every CUDA device with its name and memory, then the CPU."""
    options: list[tuple[str, str]] = []
    cuda = torch.cuda.is_available()
    if cuda:
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            options.append((f"cuda:{i} · {props.name} · {props.total_memory / 2**30:.1f} GiB", f"cuda:{i}"))
    n = torch.get_num_threads()
    cpu = f"cpu · {n} thread{'s' if n != 1 else ''}"
    options.append((cpu if cuda else f"{cpu} (no CUDA GPU visible to torch)", "cpu"))
    return options


def device_note(device: str) -> str:
    """One line saying which device trains, and why when it is the CPU."""
    if device.startswith("cuda"):
        idx = torch.device(device).index or 0
        props = torch.cuda.get_device_properties(idx)
        return f"Training on GPU {device}: {props.name}, {props.total_memory / 2**30:.1f} GiB."
    if torch.cuda.is_available():
        return "Training on the CPU (a CUDA GPU is available: pick it in the device list to use it)."
    return ("No CUDA GPU is visible to torch (torch.cuda.is_available() is False): training falls back to "
            f"the CPU ({torch.get_num_threads()} torch threads). Use the `cpu` preset here.")
