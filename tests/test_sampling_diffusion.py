"""Diffusion building blocks against independent references: diffusers' schedulers (same schedule, same
deterministic denoiser, same noise), closed forms, and the exact denoiser of Gaussian data."""

from __future__ import annotations

import math

import pytest
import torch

from bench.sampling.diffusion.guidance import classifier_free_guidance
from bench.sampling.diffusion.parameterization import EDMPreconditioned, target_of, x0_from
from bench.sampling.diffusion.samplers import ddim, ddpm_ancestral, euler, heun
from bench.sampling.diffusion.schedules import alpha_sigma, cosine_logsnr, karras_sigmas, logsnr_of_alphas_cumprod
from bench.train.losses.diffusion import edm_loss, edm_loss_weight, edm_training_sigmas

MU, STD = 0.3, 0.5  # the data distribution N(MU, STD²) per element


def gaussian_x0(x: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """E[x_0 | x_t] for x_0 ~ N(MU, STD²), x_t = α x_0 + σ ε: the exact denoiser (a Gaussian posterior mean)."""
    return MU + alpha * STD**2 / (alpha**2 * STD**2 + sigma**2) * (x - alpha * MU)


def vp_denoiser(x, logsnr):
    return gaussian_x0(x, *alpha_sigma(torch.as_tensor(logsnr, dtype=x.dtype)))


def edm_denoiser(x, sigma):
    return gaussian_x0(x, torch.ones((), dtype=x.dtype), torch.as_tensor(sigma, dtype=x.dtype))


def start(shape=(4, 3, 5, 5), seed=0) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# --------------------------------------------------------------------------- schedules


def test_karras_sigmas_follow_their_formula():
    sigmas = karras_sigmas(5, 0.002, 80.0, 7.0)
    i = torch.arange(5, dtype=torch.float64)
    expected = (80 ** (1 / 7) + i / 4 * (0.002 ** (1 / 7) - 80 ** (1 / 7))) ** 7
    torch.testing.assert_close(sigmas, torch.cat([expected, torch.zeros(1, dtype=torch.float64)]), rtol=1e-12, atol=0)
    assert sigmas[0] == pytest.approx(80.0) and sigmas[4] == pytest.approx(0.002)


def test_cosine_logsnr_is_the_cosine_schedule_between_its_clips():
    t = torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0], dtype=torch.float64)
    lam = cosine_logsnr(t)
    assert lam[0] == pytest.approx(20.0) and lam[-1] == pytest.approx(-20.0)
    alpha, sigma = alpha_sigma(lam[1:-1])
    torch.testing.assert_close(alpha, torch.cos(math.pi / 2 * t[1:-1]), atol=1e-4, rtol=0)  # α ≈ cos(π t / 2) inside the clips
    torch.testing.assert_close(alpha**2 + sigma**2, torch.ones(3, dtype=torch.float64))


# --------------------------------------------------------------------------- samplers against diffusers


def _eps_model(scheduler_alphas: torch.Tensor):
    """A diffusers-style ε model (x_t, t) built from the exact Gaussian denoiser and a ᾱ table."""

    def model(x, t):
        abar = scheduler_alphas[int(t)].to(x.dtype)
        alpha, sigma = abar.sqrt(), (1 - abar).sqrt()
        return (x - alpha * gaussian_x0(x, alpha, sigma)) / sigma

    return model


def test_ddpm_ancestral_equals_diffusers_ddpm_scheduler():
    from diffusers import DDPMScheduler

    sched = DDPMScheduler(num_train_timesteps=50, beta_schedule="squaredcos_cap_v2", clip_sample=False)
    sched.set_timesteps(50)
    model, x = _eps_model(sched.alphas_cumprod), start()
    reference, g = x.clone(), torch.Generator().manual_seed(7)
    for t in sched.timesteps:
        reference = sched.step(model(reference, t), t, reference, generator=g).prev_sample
    logsnrs = torch.cat([logsnr_of_alphas_cumprod(sched.alphas_cumprod.double())[sched.timesteps], torch.tensor([math.inf]).double()])
    ours, nfe = ddpm_ancestral(vp_denoiser, x.clone(), logsnrs, torch.Generator().manual_seed(7))
    assert nfe == 50
    torch.testing.assert_close(ours, reference, atol=1e-4, rtol=0)


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_ddim_equals_diffusers_ddim_scheduler(eta):
    from diffusers import DDIMScheduler

    sched = DDIMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", clip_sample=False, set_alpha_to_one=True)
    sched.set_timesteps(20)
    model, x = _eps_model(sched.alphas_cumprod), start()
    reference, g = x.clone(), torch.Generator().manual_seed(3)
    for t in sched.timesteps:
        reference = sched.step(model(reference, t), t, reference, eta=eta, generator=g).prev_sample
    lam = logsnr_of_alphas_cumprod(sched.alphas_cumprod.double())
    logsnrs = torch.cat([lam[sched.timesteps], torch.tensor([math.inf]).double()])  # ends at ᾱ = 1 (set_alpha_to_one)
    ours, nfe = ddim(vp_denoiser, x.clone(), logsnrs, eta=eta, generator=torch.Generator().manual_seed(3))
    assert nfe == 20
    torch.testing.assert_close(ours, reference, atol=1e-4, rtol=0)  # η = 1: the same noise draws, in the same order


def _edm_reference(scheduler_cls, steps: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Run a diffusers Karras-σ scheduler with the exact denoiser as an ε model; returns (sample, its σs)."""
    sched = scheduler_cls(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", use_karras_sigmas=True)
    sched.set_timesteps(steps)
    sample = x * sched.init_noise_sigma
    start_sample = sample.clone()
    for t in sched.timesteps:
        scaled = sched.scale_model_input(sample, t)
        sigma = sched.sigmas[sched.step_index].to(x.dtype)
        eps = (scaled * (sigma**2 + 1).sqrt() - edm_denoiser(scaled * (sigma**2 + 1).sqrt(), sigma)) / sigma
        sample = sched.step(eps, t, sample).prev_sample
    return sample, start_sample


def test_euler_and_heun_equal_diffusers_euler_and_heun_schedulers():
    from diffusers import EulerDiscreteScheduler, HeunDiscreteScheduler

    for cls, sampler, nfe_of in ((EulerDiscreteScheduler, euler, lambda n: n), (HeunDiscreteScheduler, heun, lambda n: 2 * n - 1)):
        x = start()
        reference, x_start = _edm_reference(cls, 12, x)
        sched = cls(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", use_karras_sigmas=True)
        sched.set_timesteps(12)
        sigmas = torch.unique_consecutive(sched.sigmas.double())  # Heun's table repeats each σ for its two evaluations
        ours, nfe = sampler(edm_denoiser, x_start.double(), sigmas)
        assert nfe == nfe_of(12), cls.__name__
        torch.testing.assert_close(ours, reference.double(), atol=1e-4, rtol=0, msg=cls.__name__)


# --------------------------------------------------------------------------- samplers on Gaussian data


@pytest.mark.parametrize(("name", "tolerance"), [("euler", 0.03), ("heun", 0.005), ("ddim", 0.02)])  # measured 0.023, 0.0013, 0.013
def test_deterministic_samplers_reproduce_gaussian_data_better_with_more_steps(name, tolerance):
    """From the prior, with the exact denoiser: sample mean → MU and std → STD, the error falling with the steps."""
    errors = []
    for steps in (4, 16, 64):
        noise = start((20000,), seed=1)
        if name == "ddim":
            lam = cosine_logsnr(torch.linspace(1, 0, steps + 1, dtype=torch.float64))
            x, _ = ddim(vp_denoiser, noise * alpha_sigma(lam[0])[1] + alpha_sigma(lam[0])[0] * MU, lam)
        else:
            sigmas = karras_sigmas(steps, 0.002, 80.0)
            x, _ = (euler if name == "euler" else heun)(edm_denoiser, MU + noise * math.sqrt(80.0**2 + STD**2), sigmas)
        errors.append(abs(float(x.mean()) - MU) + abs(float(x.std()) - STD))
    assert errors[2] < tolerance and errors[2] < errors[1] < errors[0], errors  # 4, 16, 64 steps


def test_edm_churn_reaches_the_data_distribution():
    noise = start((20000,), seed=2)
    x, _ = heun(edm_denoiser, MU + noise * math.sqrt(80.0**2 + STD**2), karras_sigmas(32), s_churn=2, s_tmin=0.05, s_tmax=50,
                generator=torch.Generator().manual_seed(0))
    assert abs(float(x.mean()) - MU) < 0.01 and abs(float(x.std()) - STD) < 0.01  # measured 0.0013, 0.0075


def test_ddpm_ancestral_reaches_the_data_distribution_as_its_steps_grow():
    """3DiM's sampler: the variance deficit of few ancestral steps (fixed small σ² = β̃) shrinks with the steps."""
    noise, deficits = start((20000,), seed=2), []
    for n in (16, 64, 256):
        lam = torch.cat([cosine_logsnr(torch.linspace(1, 0, n + 1, dtype=torch.float64))[:-1], torch.tensor([math.inf]).double()])
        alpha0, sigma0 = alpha_sigma(lam[0])
        x, _ = ddpm_ancestral(vp_denoiser, alpha0 * MU + sigma0 * noise, lam, torch.Generator().manual_seed(0))
        deficits.append(STD - float(x.std()))
        assert abs(float(x.mean()) - MU) < 0.015
    assert deficits[0] > deficits[1] > deficits[2] and abs(deficits[2]) < 0.01, deficits  # measured 0.082, 0.026, 0.0076


def test_same_seed_same_draws_other_seed_other_draws():
    sigmas = karras_sigmas(8)
    run = lambda seed: heun(edm_denoiser, start(), sigmas, s_churn=10, generator=torch.Generator().manual_seed(seed))[0]  # noqa: E731
    assert torch.equal(run(0), run(0)) and not torch.equal(run(0), run(1))


# --------------------------------------------------------------------------- parameterization, guidance, losses


@pytest.mark.parametrize("kind", ["eps", "v", "x0"])
def test_each_prediction_target_gives_back_x0(kind):
    x0, eps = start(seed=3), start(seed=4)
    alpha, sigma = alpha_sigma(torch.tensor([-2.0, 0.0, 1.0, 3.0], dtype=torch.float64))
    x_t = alpha.view(-1, 1, 1, 1) * x0 + sigma.view(-1, 1, 1, 1) * eps
    torch.testing.assert_close(x0_from(kind, target_of(kind, x0, eps, alpha, sigma), x_t, alpha, sigma), x0)


def test_edm_preconditioning_coefficients():
    """With F = 0 the denoiser is c_skip x; with F = 1 it adds c_out; F sees c_in x and ln(σ)/4 (EDM Table 1)."""
    seen = {}

    def net(x_in, c_noise):
        seen["x_in"], seen["c_noise"] = x_in, c_noise
        return torch.ones_like(x_in)

    sigma, sd = torch.tensor([0.1, 2.0], dtype=torch.float64), 0.5
    x = start((2, 3))
    out = EDMPreconditioned(net, sd)(x, sigma)
    c_skip = sd**2 / (sigma**2 + sd**2)
    c_out = sigma * sd / (sigma**2 + sd**2).sqrt()
    torch.testing.assert_close(out, c_skip[:, None] * x + c_out[:, None])
    torch.testing.assert_close(seen["x_in"], x / (sigma**2 + sd**2).sqrt()[:, None])
    torch.testing.assert_close(seen["c_noise"], sigma.log() / 4)


def test_classifier_free_guidance_weight_zero_is_the_conditional_denoiser():
    cond = lambda x, s: x * 0.5  # noqa: E731
    uncond = lambda x, s: x * 0.1  # noqa: E731
    x = start()
    assert torch.equal(classifier_free_guidance(cond, uncond, 0.0)(x, 1.0), cond(x, 1.0))
    torch.testing.assert_close(classifier_free_guidance(cond, uncond, 2.0)(x, 1.0), 3 * cond(x, 1.0) - 2 * uncond(x, 1.0))


def test_edm_loss_weights_and_training_sigmas():
    sigma = torch.tensor([0.5, 1.0])
    torch.testing.assert_close(edm_loss_weight(sigma, 0.5), (sigma**2 + 0.25) / (sigma * 0.5) ** 2)
    x0 = torch.zeros(2, 4)
    denoised = torch.ones(2, 4) * torch.tensor([[1.0], [2.0]])
    assert edm_loss(denoised, x0, sigma).item() == pytest.approx(((0.5 / 0.0625) * 1 + (1.25 / 0.25) * 4) / 2)
    log_sigmas = edm_training_sigmas(50000, generator=torch.Generator().manual_seed(0)).log()
    assert float(log_sigmas.mean()) == pytest.approx(-1.2, abs=0.02) and float(log_sigmas.std()) == pytest.approx(1.2, abs=0.02)
