"""Pieces shared by the pseudo-label solvers: the stopping rule and SPD solves.

All functions work on float64 torch tensors and assume validated input.
"""

import math

import torch

__all__ = ["CholeskySolver", "relative_kkt_residual", "solve_spd"]


def relative_kkt_residual(y, grad, weights):
    """The relative KKT residual of DESIGN.md for rows on the simplex.

    With the per-row scaled gradient G_ik (``grad``) and μ_i = Σ_k y_ik G_ik:
    max_ik |y_ik (G_ik − μ_i)| / max(1, |μ_i|) over y_ik > 0, plus the dual
    violation max_ik max(0, μ_i − G_ik) / max(1, |μ_i|) over y_ik = 0. Rows of
    zero weight do not count. Returns a float (inf when G is not finite where
    it counts).
    """
    mu = torch.where(y > 0, y * grad, 0.0).sum(dim=1, keepdim=True)
    scale = mu.abs().clamp_min(1.0)
    counted = (weights > 0)[:, None]
    slack = torch.where(counted & (y > 0), y * (grad - mu), 0.0).abs() / scale
    violation = torch.where(counted & (y == 0), (mu - grad).clamp_min(0.0),
                            0.0) / scale
    residual = float(slack.amax() + violation.amax())
    return residual if math.isfinite(residual) else math.inf


class CholeskySolver:
    """Cholesky factorization of a symmetric positive (semi)definite matrix.

    The matrix is scaled by its diagonal before factorizing; one that is
    semidefinite up to rounding gets its spectrum lifted by 1e-12. ``solve``
    reuses the factor.
    """

    def __init__(self, matrix):
        diagonal = matrix.diagonal().clamp_min(torch.finfo(matrix.dtype).tiny).sqrt()
        scaled = matrix / diagonal[:, None] / diagonal
        factor, info = torch.linalg.cholesky_ex(scaled)
        if int(info) != 0:
            eye = torch.eye(scaled.shape[0], dtype=scaled.dtype, device=scaled.device)
            factor, _ = torch.linalg.cholesky_ex(scaled + 1e-12 * eye)
        self.diagonal, self.factor = diagonal, factor

    def solve(self, rhs):
        scaled = torch.cholesky_solve((rhs / self.diagonal)[:, None], self.factor)
        return scaled.squeeze(1) / self.diagonal


def solve_spd(matrix, rhs):
    """Solve matrix @ x = rhs for a symmetric positive (semi)definite matrix."""
    return CholeskySolver(matrix).solve(rhs)
