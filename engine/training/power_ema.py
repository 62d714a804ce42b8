"""Power-function EMA profiles and post-hoc EMA reconstruction, after Karras et al. 2024 ("Analyzing
and improving the training dynamics of diffusion models", EDM2: section 3 and appendix C). Plain
numpy in float64, no torch: the formulas alone.

A power-function EMA of exponent γ, read at training time t, averages the weights θ_τ of the steps
τ ≤ t with weights ∝ τ^γ. Its width relative to t is σ_rel (EDM2's "relative EMA length"):
σ_rel² = (γ+1) / ((γ+2)² (γ+3)). It is tracked during training with

    θ̂_t = β_t θ̂_{t-1} + (1 − β_t) θ_t,   β_t = (1 − 1/t)^(γ+1)   (t = 1, 2, … optimizer steps)

(β_1 = 0: the initial weights get no weight). Snapshots of a few such profiles taken at several
times span a space of averaging profiles; the post-hoc EMA of any other σ_rel at one of those
times is the least-squares combination of the snapshots: the profiles' inner products have a
closed form, so the coefficients solve a small linear system (EDM2's solve_posthoc_coefficients)."""
from __future__ import annotations

import numpy as np

from engine.core.config import POSTHOC_SIGMA_MAX as MAX_SIGMA_REL   # about σ_rel of γ = 0, a plain running mean


def sigma_rel_of(gamma: float) -> float:
    """σ_rel of the power-function profile of exponent γ (EDM2 eq. 123)."""
    g = float(gamma)
    return float(np.sqrt((g + 1) / ((g + 2) ** 2 * (g + 3))))


def gamma_of(sigma_rel: float) -> float:
    """The exponent γ whose profile has this σ_rel: the largest real root of
    γ³ + 7γ² + (16 − σ⁻²)γ + (12 − σ⁻²) = 0 (EDM2 eq. 126, algorithm 2)."""
    s = float(sigma_rel)
    if not 0 < s <= MAX_SIGMA_REL:
        raise ValueError(f"sigma_rel = {sigma_rel!r} must be in (0, {MAX_SIGMA_REL}]")
    inv = s ** -2
    roots = np.roots([1.0, 7.0, 16.0 - inv, 12.0 - inv])
    return float(roots[np.abs(roots.imag) < 1e-9].real.max())


def beta(gamma: float, t: int) -> float:
    """The decay of the step that makes t steps (t >= 1): (1 − 1/t)^(γ+1) (EDM2 eq. 127)."""
    return (1.0 - 1.0 / t) ** (gamma + 1.0)


def profile_inner_products(a_t, a_gamma, b_t, b_gamma) -> np.ndarray:
    """⟨p_a, p_b⟩ of the normalised power-function profiles p(τ) = (γ+1) τ^γ / t^(γ+1) on [0, t],
    broadcast over the arguments (EDM2 eq. 151, algorithm 3):
    (γa+1)(γb+1) / ((γa+γb+1) max(ta, tb)) · (ta/tb)^(γb if ta < tb else −γa)."""
    a_t, a_gamma, b_t, b_gamma = (np.asarray(v, dtype=np.float64) for v in (a_t, a_gamma, b_t, b_gamma))
    ratio = a_t / b_t
    exponent = np.where(a_t < b_t, b_gamma, -a_gamma)
    return (a_gamma + 1) * (b_gamma + 1) * ratio ** exponent / ((a_gamma + b_gamma + 1) * np.maximum(a_t, b_t))


def posthoc_coefficients(in_t, in_sigma_rel, out_t: float, out_sigma_rel: float) -> np.ndarray:
    """The weights x of the stored snapshots (times in_t, profiles in_sigma_rel; one entry per
    snapshot profile) whose sum Σ x_i θ̂_i best approximates, in least squares over the averaging
    profiles, the power-function EMA of out_sigma_rel at time out_t. Normalised to sum to 1, as
    EDM2 does, so a constant weight trajectory is reproduced exactly."""
    in_t = np.asarray(in_t, dtype=np.float64).reshape(-1)
    gammas = np.array([gamma_of(s) for s in np.asarray(in_sigma_rel, dtype=np.float64).reshape(-1)])
    if in_t.shape != gammas.shape or not in_t.size:
        raise ValueError("posthoc_coefficients: give one time per snapshot profile, and at least one")
    if np.any(in_t <= 0) or out_t <= 0:
        raise ValueError("posthoc_coefficients: times are steps >= 1")
    gram = profile_inner_products(in_t[:, None], gammas[:, None], in_t[None, :], gammas[None, :])
    target = profile_inner_products(in_t, gammas, float(out_t), gamma_of(out_sigma_rel))
    # lstsq rather than solve: two snapshots of one profile at one time make the system singular
    x = np.linalg.lstsq(gram, target, rcond=None)[0]
    return x / x.sum()
