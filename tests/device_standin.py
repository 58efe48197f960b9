"""A stand-in second device on a CPU-only machine, to catch the bugs a GPU would (`test_devices.py`).

The agent is put on torch's ``meta`` device *by name*: every call that asks for ``meta`` (a factory's
``device=``, ``.to(meta)``, a module moved there) gets a CPU tensor of the class `OnDevice` instead,
which reports ``meta`` as its device; results computed from an `OnDevice` tensor are `OnDevice` too.
Everything else is a host tensor. While `DeviceDiscipline` is active it records, with the line of
our code responsible (mbdpo_lab or the test calling it; torch's internals are not judged):

* a host tensor of more than 0 dimensions meeting a device tensor in one operation (CUDA refuses it);
* a tensor created by our code without a ``device=`` (a factory left to its CPU default);
* a random draw whose generator lives elsewhere than its output (a CPU generator for a device draw);
* ``.numpy()`` of a device tensor (CUDA needs ``.cpu()`` first).

Generators made with ``torch.Generator(device=meta)`` are CPU generators remembered as device ones.
"""
from __future__ import annotations

import traceback
from pathlib import Path

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten, tree_map

STANDIN = torch.device("meta")
HOST = torch.device("cpu")
REPO = Path(__file__).resolve().parent.parent
OURS = (str(REPO / "mbdpo_lab"), str(REPO / "tests"))  # code whose calls are checked (the checker's own aside)

FACTORIES = {torch.randn, torch.rand, torch.randint, torch.randperm, torch.zeros, torch.ones, torch.full,
             torch.empty, torch.arange, torch.linspace, torch.tensor, torch.as_tensor, torch.eye, torch.normal}
RANDOM = {torch.randn, torch.rand, torch.randint, torch.randperm, torch.normal, torch.randn_like, torch.rand_like,
          torch.randint_like, torch.Tensor.normal_, torch.Tensor.uniform_, torch.Tensor.exponential_,
          torch.multinomial}
_REAL_GENERATOR = torch.Generator


class OnDevice(torch.Tensor):
    """A CPU tensor playing one on the stand-in device."""

    __torch_function__ = torch._C._disabled_torch_function_impl


class StandinGenerator(_REAL_GENERATOR):
    """A CPU generator that remembers whether it was asked for on the stand-in device."""

    def __new__(cls, device=None):
        return super().__new__(cls)

    def __init__(self, device=None):
        self.on_device = _is_standin(device)

    @property
    def device(self):
        return STANDIN if self.on_device else HOST


def _is_standin(device) -> bool:
    return device is not None and torch.device(device) == STANDIN if isinstance(device, (str, torch.device)) else False


def _wrap(x):
    return x.as_subclass(OnDevice) if isinstance(x, torch.Tensor) and not isinstance(x, OnDevice) else x


def _unwrap(x):
    return x.as_subclass(torch.Tensor) if isinstance(x, OnDevice) else x


def _caller() -> tuple[str, str] | None:
    """(file:line, function) of the innermost frame of our code on the stack (None: torch's own calls)."""
    for frame in reversed(traceback.extract_stack()[:-3]):
        if frame.filename.startswith(OURS) and frame.filename != __file__:
            return f"{Path(frame.filename).name}:{frame.lineno}", frame.name
    return None


_DEVICE_PROPERTY = torch._C.TensorBase.__dict__["device"]
_DATA_PROPERTY = torch._C.TensorBase.__dict__["data"]
# operations that accept a host tensor beside a device one (copy_ copies across devices, as load_state_dict does)
EXEMPT = {torch._has_compatible_shallow_copy_type, torch.Tensor.__setitem__, torch.Tensor.__getitem__,
          torch.Tensor.copy_}


class DeviceDiscipline(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.violations: list[str] = []
        self.device_ids: set[int] = set()  # parameters whose data was moved to the stand-in device

    def flag(self, what: str, construction_ok: bool = False) -> None:
        where = _caller()
        if where is None or (construction_ok and where[1] == "__init__"):
            return  # not our code; or a module's __init__, whose tensors are moved with the module
        self.violations.append(f"{where[0]}: {what}")

    def on(self, t) -> bool:
        return isinstance(t, OnDevice) or (isinstance(t, torch.Tensor) and id(t) in self.device_ids)

    def __enter__(self):
        torch.Generator = StandinGenerator  # type: ignore[misc]
        return super().__enter__()

    def __exit__(self, *exc):
        torch.Generator = _REAL_GENERATOR  # type: ignore[misc]
        return super().__exit__(*exc)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        owner = getattr(func, "__self__", None)  # a property's __get__/__set__ is a fresh method-wrapper each time
        if owner is _DEVICE_PROPERTY:
            return STANDIN if self.on(args[0]) else HOST
        if owner is _DATA_PROPERTY and func.__name__ == "__set__":  # Module.to(meta) sets param.data
            if isinstance(args[1], OnDevice):
                self.device_ids.add(id(args[0]))
            else:
                self.device_ids.discard(id(args[0]))
            return func(args[0], _unwrap(args[1]))
        flat, _ = tree_flatten((args, kwargs))
        on_device = any(self.on(t) for t in flat)
        if func is torch.Tensor.numpy and on_device:
            self.flag("numpy() of a device tensor (call .cpu() first)")
        if func in (torch.Tensor.cpu,):
            return _unwrap(func(*tree_map(_unwrap, args), **kwargs)).clone() if on_device else func(*args, **kwargs)
        target = on_device
        if func is torch.Tensor.to:  # .to(device), .to(tensor), .to(dtype)
            dests = [a for a in list(args[1:]) + [kwargs.get("device")] if isinstance(a, (str, torch.device))]
            if dests:
                target = _is_standin(dests[0])
                args = tuple(HOST if isinstance(a, (str, torch.device)) and _is_standin(a) else a for a in args)
                kwargs = {k: (HOST if k == "device" and _is_standin(v) else v) for k, v in kwargs.items()}
                out = func(*[_unwrap(a) for a in args], **kwargs)
                return _wrap(out) if target else _unwrap(out)
        if "device" in kwargs:
            target = _is_standin(kwargs["device"])
            if target:
                kwargs["device"] = HOST
        elif func in FACTORIES and not any(isinstance(t, torch.Tensor) for t in flat):
            self.flag(f"torch.{func.__name__} without device= (created on the CPU by default)", construction_ok=True)
        gen = kwargs.get("generator")
        if gen is not None and func in RANDOM:
            on = getattr(gen, "on_device", False)
            if target and not on:
                self.flag(f"{func.__name__}: a host generator draws a device tensor")
            elif not target and on:
                self.flag(f"{func.__name__}: a device generator draws a host tensor")
        if on_device and func not in EXEMPT:
            hosts = [t for t in flat if isinstance(t, torch.Tensor) and not self.on(t) and t.dim() > 0]
            if hosts:
                self.flag(f"{getattr(func, '__name__', func)}: a host tensor of shape {tuple(hosts[0].shape)} meets a "
                          "device tensor")
        out = func(*tree_map(_unwrap, args), **tree_map(_unwrap, kwargs))
        return tree_map(_wrap, out) if target else out


def report(mode: DeviceDiscipline) -> str:
    seen: dict[str, int] = {}
    for v in mode.violations:
        seen[v] = seen.get(v, 0) + 1
    return "\n".join(f"{n}x {v}" for v, n in seen.items())


__all__ = ["DeviceDiscipline", "OnDevice", "STANDIN", "report"]
