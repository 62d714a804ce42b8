"""The solver registry (light: no torch). A diffusion family's `sampler` option chooses from these
names; the classes live in engine/diffusion/solvers.py and are imported on first use.

Adding a solver: one class in engine/diffusion/solvers.py and one line here. The solver
conformance suite (tests/engine/test_solvers.py) then runs it against every parameterisation and
every level type (DDPM's discrete schedule, EDM's sigma, flow matching's t)."""
from __future__ import annotations

from dataclasses import dataclass

from engine.core.registry import Registry

# How the respaced timesteps are picked from the T training steps (as diffusers' `timestep_spacing`):
#   linspace  evenly spaced from T-1 down to 0, both ends included (GenLab's default)
#   leading   0, k, 2k, ... with k = T // n, reversed (DDIM paper, Stable Diffusion's default)
#   trailing  T-1, T-1-k, ... counting down from the last step (Lin et al. 2024, "Common Diffusion
#             Noise Schedules and Sample Steps are Flawed": starts from pure noise at few steps)
SPACINGS = ("linspace", "leading", "trailing")
# DDPM's discrete schedule can also be walked at sigmas between its timesteps:
#   karras    Karras et al. 2022's rho-spaced sigmas (rho 7) between the schedule's smallest and
#             largest, at fractional timesteps (diffusers' use_karras_sigmas; "DPM++ 2M Karras")
KARRAS_RHO = 7.0
VP_SPACINGS = SPACINGS + ("karras",)


@dataclass(frozen=True)
class SolverSpec:
    """A solver's name, where its class lives, and one line for `--help`. What it can do
    (stochastic, invertible) is the class's to say, not the registry's."""
    name: str
    impl: str            # "engine.diffusion.solvers:DDIMSolver"
    help: str


SOLVERS: Registry[SolverSpec] = Registry("solver")


def register_solver(spec: SolverSpec) -> SolverSpec:
    return SOLVERS.register(spec.name, spec)


register_solver(SolverSpec("ddim", "engine.diffusion.solvers:DDIMSolver",
                           "DDIM (Song et al. 2021): deterministic at eta 0, like DDPM at eta 1"))
register_solver(SolverSpec("ddpm", "engine.diffusion.solvers:DDPMSolver",
                           "ancestral DDPM (Ho et al. 2020) over the respaced chain"))
register_solver(SolverSpec("heun", "engine.diffusion.solvers:HeunSolver",
                           "EDM's 2nd-order Heun (Karras et al. 2022): two network passes per step but the "
                           "last; deterministic unless S_churn > 0"))
register_solver(SolverSpec("euler", "engine.diffusion.solvers:EulerSolver",
                           "EDM's Euler (Karras et al. 2022) in the level's ODE frame; deterministic unless "
                           "S_churn > 0"))
register_solver(SolverSpec("euler_ancestral", "engine.diffusion.solvers:EulerAncestralSolver",
                           "Euler-ancestral (k-diffusion, diffusers' EulerAncestralDiscreteScheduler): an "
                           "Euler step down, fresh noise back up"))
register_solver(SolverSpec("dpmpp_2m", "engine.diffusion.solvers:DPMSolverPP2MSolver",
                           "DPM-Solver++(2M) (Lu et al. 2022): 2nd-order multistep in log-SNR, one network "
                           "pass per step; with spacing karras: \"DPM++ 2M Karras\""))
register_solver(SolverSpec("unipc", "engine.diffusion.solvers:UniPCSolver",
                           "UniPC (Zhao et al. 2023, bh2, order 2): DPM-Solver++'s multistep predictor with "
                           "a corrector (UniC) that reuses the next step's network pass; one pass per step"))


def solvers_help() -> str:
    return "; ".join(f"{name}: {SOLVERS.get(name).help}" for name in SOLVERS)


def solver_names() -> tuple[str, ...]:
    return SOLVERS.names()


# the ODE families' second 2nd-order solver (flow_matching, edm), beside Heun
register_solver(SolverSpec("midpoint", "engine.diffusion.solvers:MidpointSolver",
                           "explicit midpoint (2nd-order Runge-Kutta) on the probability-flow ODE: two "
                           "network passes per step but the last"))
