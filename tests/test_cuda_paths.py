"""The CUDA branches' logic, checked on a CPU: CUDA's answers are mocked where the code asks for
them, so the choices the training loop makes on a GPU are tested without one.

What only a GPU can run (and no test here pretends to): the data on the GPU (`TensorLoader`'s
uint8 tensor on CUDA), the fused Adam CUDA kernel, cuDNN's autotuning itself, bf16 autocast on
CUDA, the deferred read-back's actual overlap with the GPU, and the CUDA random-number state in
checkpoints (`checkpoints.py`, saved and restored only where CUDA is available).
"""

from __future__ import annotations

import pytest
import torch

from gan_helpers import training
from gan_helpers.training import FitOptions, SpeedOptions, adam, fit
from tests.helpers import small_gan, tiny_loader

CUDA = torch.device("cuda")
T4, A100 = (7, 5), (8, 0)  # compute capabilities: Colab's free GPU has no native bf16


def fake_cuda(monkeypatch, capability: tuple[int, int] | None) -> list[bool]:
    """Make torch.cuda answer as a machine with one GPU of `capability` (None: no GPU would).
    `is_bf16_supported` answers as torch does: True with emulation on any GPU, natively from
    Ampere (8.0) on. Returns the `including_emulation` values it was asked with."""
    asked: list[bool] = []

    def is_bf16_supported(including_emulation: bool = True) -> bool:
        asked.append(including_emulation)
        return capability is not None and (including_emulation or capability >= A100)

    monkeypatch.setattr(torch.cuda, "is_available", lambda: capability is not None)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
    return asked


@pytest.mark.parametrize("capability,native", [(T4, False), (A100, True), (None, False)],
                         ids=["T4", "A100", "no-gpu"])
def test_native_bf16_asks_cuda_without_emulation(monkeypatch, capability, native):
    asked = fake_cuda(monkeypatch, capability)
    assert training.native_bf16.__wrapped__(CUDA) is native
    assert asked in ([False], [])  # never the default, which says True on a T4 (emulated)
    monkeypatch.setattr(training, "native_bf16", training.native_bf16.__wrapped__)
    assert SpeedOptions(amp="auto").uses_bf16(CUDA) is native
    assert SpeedOptions(amp="bf16").uses_bf16(CUDA) is True  # asked for: always


def test_fused_adam_is_chosen_for_cuda_only():
    cpu = torch.device("cpu")
    assert SpeedOptions().use_fused_adam(CUDA) is True
    assert SpeedOptions().use_fused_adam(cpu) is None  # torch's own default
    assert SpeedOptions(fused_adam=False).use_fused_adam(CUDA) is False
    assert SpeedOptions(fused_adam=True).use_fused_adam(cpu) is True


def test_adam_built_for_cuda_is_fused_and_steps():
    """`adam(..., device="cuda")` asks for the fused kernels; torch has them on the CPU too, so
    the optimizer it builds is run here for one step."""
    G, _ = small_gan("mlp")
    opt = adam(G, device="cuda")
    assert opt.defaults["fused"] is True
    before = [p.detach().clone() for p in G.parameters()]
    G(torch.randn(4, 16)).mean().backward()
    opt.step()
    assert any(not torch.equal(a, b) for a, b in zip(before, G.parameters()))


@pytest.mark.parametrize("deterministic,asked,expected", [
    (False, None, True), (False, False, False), (True, None, False)])
def test_cudnn_autotuning_on_cuda_unless_deterministic_or_refused(monkeypatch, deterministic,
                                                                  asked, expected):
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    monkeypatch.setattr(torch, "are_deterministic_algorithms_enabled", lambda: deterministic)
    G, D = small_gan("dcgan")
    SpeedOptions(cudnn_benchmark=asked).apply(G, D, CUDA)
    assert torch.backends.cudnn.benchmark is expected
    SpeedOptions().apply(G, D, torch.device("cpu"))  # never on the CPU
    assert torch.backends.cudnn.benchmark is expected


@pytest.mark.parametrize("every", [25, 7])
def test_deferred_read_back_keeps_every_step(every):
    """On a GPU the losses are read back every 25 steps (`sync_every`): a run whose length is
    not a multiple still records every step, in order, identical to reading every step."""
    runs = []
    for sync in (1, every):
        G, D = small_gan("mlp")
        runs.append(fit(G, D, tiny_loader(), epochs=4, max_steps=30, progress=False,
                        options=FitOptions(sync_every=sync)))
    assert len(runs[0]["loss_d"]) == len(runs[1]["loss_d"]) == 30
    for key in ("loss_d", "loss_g", "d_real", "d_fake"):
        assert torch.allclose(torch.tensor(runs[0][key]), torch.tensor(runs[1][key])), key


def test_loading_a_generator_onto_a_missing_gpu_is_refused_in_words(tmp_path, monkeypatch):
    """Before anything is read: the run folder here does not even exist."""
    from gan_helpers.checkpoints import load_generator
    from gan_helpers.errors import DeviceUnavailableError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceUnavailableError, match="CUDA is not available here"):
        load_generator(tmp_path / "no-run", device="cuda")
