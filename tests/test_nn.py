import torch
import torch.nn.functional as F

from mbdpo_lab.agent import MBDPO
from mbdpo_lab.config import make_config
from mbdpo_lab.nn import EnsembleMLP, SimNorm, TwoHot, mish, symexp, symlog


def test_symlog_symexp_inverse():
    x = torch.linspace(-500, 500, 1001)
    assert torch.allclose(symexp(symlog(x)), x, rtol=1e-5, atol=1e-4)


def test_two_hot_round_trip():
    th = TwoHot(101, -10, 10)
    x = torch.tensor([-300.0, -7.25, -1.0, 0.0, 0.3, 2.5, 42.0, 900.0])
    enc = th.encode(x)
    assert torch.allclose(enc.sum(-1), torch.ones(len(x)))
    assert (enc > 0).sum(-1).max() <= 2  # two-hot
    # decoding the exact two-hot distribution (as logits) gives the value back
    dec = th.decode(torch.log(enc + 1e-12))
    assert torch.allclose(dec, x, rtol=1e-3, atol=1e-3)


def test_two_hot_cross_entropy_minimised_at_target():
    th = TwoHot()
    target = torch.tensor([3.7])
    good = torch.log(th.encode(target) + 1e-9)
    bad = torch.log(th.encode(torch.tensor([-3.7])) + 1e-9)
    assert th.cross_entropy(good, target) < th.cross_entropy(bad, target)


def test_simnorm_groups_sum_to_one():
    z = SimNorm(8)(torch.randn(4, 64) * 5)
    groups = z.view(4, 8, 8)
    assert torch.allclose(groups.sum(-1), torch.ones(4, 8), atol=1e-6)
    assert (z >= 0).all()


def test_simnorm_is_the_group_softmax_with_its_gradient_even_for_large_logits():
    x = (torch.randn(6, 32) * 40).requires_grad_()  # exp would overflow without the max shift
    g = torch.randn(6, 32)
    z = SimNorm(8)(x)
    expected = torch.softmax(x.view(6, 4, 8), -1).view(6, 32)
    torch.testing.assert_close(z, expected, rtol=1e-5, atol=1e-6)
    (grad,) = torch.autograd.grad((z * g).sum(), x)
    (expected_grad,) = torch.autograd.grad((expected * g).sum(), x)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-5, atol=1e-6)


def test_one_exp_mish_equals_atens_mish_and_its_gradient_over_the_whole_range():
    # a block large enough to take the one-exp path, with values far into both tails
    x = torch.cat([torch.linspace(-120, 120, 4001), torch.randn(4000) * 4]).view(-1, 1).requires_grad_()
    g = torch.randn_like(x)
    y = mish(x)
    torch.testing.assert_close(y, F.mish(x), rtol=1e-5, atol=2e-6)
    (grad,) = torch.autograd.grad((y * g).sum(), x)
    (expected,) = torch.autograd.grad((F.mish(x) * g).sum(), x)
    torch.testing.assert_close(grad, expected, rtol=1e-5, atol=2e-6)
    assert torch.isfinite(grad).all()
    with torch.no_grad():  # the gradient-free path (planning) reuses its buffers
        torch.testing.assert_close(mish(x.detach()), F.mish(x.detach()), rtol=1e-5, atol=2e-6)


def test_one_exp_mish_gradient_is_the_analytic_one_in_float64():
    x = (torch.randn(64, 64, dtype=torch.float64) * 5).requires_grad_()
    assert torch.autograd.gradcheck(mish, (x,))
    assert mish(x).grad_fn is not None and "OneExpMish" in type(mish(x).grad_fn).__name__


def test_ensemble_selected_heads_match_full_evaluation():
    torch.manual_seed(0)
    ens = EnsembleMLP(5, 7, [16, 16], 3).eval()
    x = torch.randn(10, 7)
    full = ens(x)
    assert torch.allclose(ens(x, [3, 1]), full[[3, 1]], atol=1e-5)


def _params(size):
    cfg = make_config("paper", model_size=size, use_score_net=True, device="cpu")
    return MBDPO(cfg, obs_dim=24, act_dim=6).wm.num_params()


def test_parameter_counts_match_design():
    # TD-MPC2's model sizes: size 1 -> ~1.7M, size 5 -> ~6M (incl. energy head and score net)
    assert abs(_params(1) - 1.7e6) / 1.7e6 < 0.10
    assert abs(_params(5) - 6.0e6) / 6.0e6 < 0.10
