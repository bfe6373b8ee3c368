"""Each script's inline loss copy equals common/brrl.py, on random inputs (the scripts stay copyable, the math is one)."""

from __future__ import annotations

import pytest
import torch

import bpo_atari
import bpo_continuous
import ppo_atari
import ppo_continuous
from common import brrl


@pytest.mark.parametrize("ppo, bpo, ppo_eps, bpo_eps", [(ppo_continuous, bpo_continuous, 0.2, 0.25), (ppo_atari, bpo_atari, 0.1, 0.3)],
                         ids=["continuous", "atari"])
def test_inline_losses_equal_common_brrl(ppo, bpo, ppo_eps, bpo_eps):
    gen = torch.Generator().manual_seed(0)
    ratio = torch.rand(1000, generator=gen, dtype=torch.float64) * 2
    adv, median_adv = torch.randn(1000, generator=gen, dtype=torch.float64), torch.randn(1000, generator=gen, dtype=torch.float64)
    median_adv[:10] = 0.0
    torch.testing.assert_close(ppo.ppo_loss(ratio, adv, ppo_eps), brrl.ppo_loss(ratio, adv, ppo_eps), rtol=0, atol=0)
    for temperature in (0.0, 1e-3, 0.3, 10.0):
        for distance in ("tv", "sqrt", "log"):
            torch.testing.assert_close(bpo.bpo_loss(ratio.log(), adv, median_adv, bpo_eps, temperature, distance),
                                       brrl.bpo_loss(ratio, adv, median_adv, bpo_eps, temperature, distance),
                                       rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(bpo.bpo_target_ratio(median_adv, bpo_eps, temperature),
                                   brrl.smoothed_target_ratio(median_adv, bpo_eps, temperature), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(bpo.median_loss(adv, median_adv, temperature),
                                   brrl.median_loss(adv, median_adv, temperature), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("bpo", [bpo_continuous, bpo_atari], ids=["continuous", "atari"])
@pytest.mark.parametrize("scale", [0.03, 7.0])
def test_dividing_by_a_scale_measures_the_temperature_in_that_unit(bpo, scale):
    # --norm-median-adv divides Ã (and Q̂ − u in the median loss) by s: the same as temperature λ·s in return units
    gen = torch.Generator().manual_seed(1)
    returns, median = torch.randn(500, generator=gen, dtype=torch.float64), torch.randn(500, generator=gen, dtype=torch.float64)
    for temperature in (0.0, 0.1, 1.0):
        torch.testing.assert_close(bpo.bpo_target_ratio((returns - median) / scale, 0.2, temperature),
                                   brrl.smoothed_target_ratio(returns - median, 0.2, temperature * scale), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(scale * bpo.median_loss(returns / scale, median / scale, temperature),
                                   brrl.median_loss(returns, median, temperature * scale), rtol=1e-12, atol=1e-12)
