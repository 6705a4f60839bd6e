"""Reference for taskgate's multi-task weighting methods: each method's combination of fixed
per-task losses and gradient vectors, written after LibMTL's implementations
(median-research-group/LibMTL, LibMTL/weighting/*.py) on whole gradient vectors in NumPy
(float64), with SciPy's SLSQP (tight tolerances) for MGDA's and CAGrad's small problems as
LibMTL uses it for CAGrad. The autograd steps LibMTL leaves to torch (GradNorm's gradient of
the weights, FAMO's softmax pull-back, the uncertainty gradient) are written out and checked
here against central finite differences.

    python3 tests/reference/weighting.py            # writes tests/fixtures/weighting.json

taskgate computes the same from the Gram matrix of the gradients
(src/train/weighting/methods.rs); its unit tests compare with this fixture to 1e-5.
"""
import json
import pathlib

import numpy as np
from scipy.optimize import minimize

OUT = pathlib.Path(__file__).resolve().parent.parent / "fixtures" / "weighting.json"


def softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()


def adam_step(x, g, m, v, t, lr, wd):
    """torch.optim.Adam (L2 weight decay, bias correction, betas 0.9/0.999, eps 1e-8)."""
    b1, b2, eps = 0.9, 0.999, 1e-8
    g = g + wd * x
    t = t + 1
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    denom = np.sqrt(v) / np.sqrt(1 - b2 ** t) + eps
    return x - lr / (1 - b1 ** t) * m / denom, m, v, t


def fd_grad(f, x, h=1e-6):
    out = np.zeros_like(x)
    for i in range(len(x)):
        e = np.zeros_like(x)
        e[i] = h
        out[i] = (f(x + e) - f(x - e)) / (2 * h)
    return out


# ---- loss-only methods -------------------------------------------------------------------

def uncertainty(log_var, losses):
    # UW: loss = sum(L / (2 exp(s)) + s / 2); weights 1 / (2 exp(s)).
    weights = 1 / (2 * np.exp(log_var))
    grad = 0.5 - losses / (2 * np.exp(log_var))
    f = lambda s: np.sum(losses / (2 * np.exp(s)) + s / 2)
    assert np.allclose(grad, fd_grad(f, log_var), atol=1e-7)
    return weights, grad


def dwa(last, before_last, T):
    w = last / before_last
    return len(last) * softmax(w / T)


def famo(logits, prev_losses, losses, lr, wd, m, v, t):
    """FAMO's update_w(curr = losses) after a step on prev_losses, then the weights of the
    loss sum(log(D) z / c) for this step's losses."""
    min_losses = np.zeros_like(losses)
    delta = np.log(prev_losses - min_losses + 1e-8) - np.log(losses - min_losses + 1e-8)
    # autograd.grad(softmax(w), w, grad_outputs=delta)
    d = fd_grad(lambda w: softmax(w) @ delta, logits)
    z = softmax(logits)
    d_exact = z * (delta - z @ delta)
    assert np.allclose(d, d_exact, atol=1e-7)
    logits, m, v, t = adam_step(logits, d_exact, m, v, t, lr, wd)
    z = softmax(logits)
    D = losses - min_losses + 1e-8
    c = (z / D).sum()
    weights = z / (c * D)  # d/dL_i of sum(log(D) z / c), c held constant
    return logits, weights


# ---- gradient methods (LibMTL, rep_grad = False) -----------------------------------------

def gradnorm(grads, losses, initial, loss_scale, alpha):
    T = len(losses)

    def l_grad(s):
        w = T * softmax(s)
        G_per_loss = np.linalg.norm(w[:, None] * grads, axis=-1)
        G = G_per_loss.mean()
        L_i = losses / initial
        r_i = L_i / L_i.mean()
        constant = G * r_i ** alpha
        return w, G_per_loss, constant

    w, G_per_loss, constant = l_grad(loss_scale)

    def objective(s):  # the constant term is detached
        w_s = T * softmax(s)
        return np.abs(np.linalg.norm(w_s[:, None] * grads, axis=-1) - constant).sum()

    ds = fd_grad(objective, loss_scale)
    new_grads = (w[:, None] * grads).sum(0)
    return w, ds, new_grads


def pcgrad(grads, orders):
    pc = grads.copy()
    batch_weight = np.ones(len(grads))
    for i in range(len(grads)):
        for j in orders[i]:
            g_ij = pc[i] @ grads[j]
            if g_ij < 0:
                pc[i] -= g_ij * grads[j] / (np.linalg.norm(grads[j]) ** 2)
                batch_weight[j] -= g_ij / (np.linalg.norm(grads[j]) ** 2)
    new = pc.sum(0)
    assert np.allclose(new, batch_weight @ grads)
    return new, batch_weight


def simplex_minimize(objective, k):
    x0 = np.ones(k) / k
    best = None
    for start in [x0] + [np.eye(k)[i] * 0.9 + 0.1 / k for i in range(k)]:
        res = minimize(objective, start, bounds=[(0, 1)] * k,
                       constraints=({"type": "eq", "fun": lambda x: 1 - x.sum()},),
                       method="SLSQP", options={"ftol": 1e-16, "maxiter": 2000})
        if best is None or res.fun < best.fun:
            best = res
    return np.clip(best.x, 0, None) / np.clip(best.x, 0, None).sum()


def cagrad(grads, calpha, rescale):
    GG = grads @ grads.T
    T = len(grads)
    g0_norm = np.sqrt(GG.mean() + 1e-8)
    b = np.ones(T) / T
    c = calpha * g0_norm + 1e-8
    obj = lambda x: x @ GG @ b + c * np.sqrt(x @ GG @ x + 1e-8)
    w = simplex_minimize(obj, T)
    gw = (grads * w[:, None]).sum(0)
    lmbda = c / (np.linalg.norm(gw) + 1e-8)
    g = grads.mean(0) + lmbda * gw
    g = g / {0: 1, 1: 1 + calpha ** 2, 2: 1 + calpha}[rescale]
    return g, w


def min_norm_frank_wolfe(grads, iters=100000):
    """Sener and Koltun's MinNormSolver loop (as LibMTL's MGDA), run long enough to converge."""
    G = grads @ grads.T
    k = len(grads)
    sol = np.ones(k) / k
    for _ in range(iters):
        grad_dir = G @ sol
        t = int(np.argmin(grad_dir))
        v1v1, v1v2, v2v2 = sol @ G @ sol, sol @ G[:, t], G[t, t]
        if v1v2 >= v1v1:
            gamma = 0.999
        elif v1v2 >= v2v2:
            gamma = 0.001
        else:
            gamma = (v2v2 - v1v2) / (v1v1 + v2v2 - 2 * v1v2)
        new = gamma * sol
        new[t] += 1 - gamma
        if np.abs(new - sol).sum() < 1e-12:
            break
        sol = new
    return sol


def mgda(grads):
    G = grads @ grads.T
    w = simplex_minimize(lambda x: x @ G @ x, len(grads))
    fw = min_norm_frank_wolfe(grads)
    assert abs(fw @ G @ fw - w @ G @ w) < 1e-6 * max(1.0, w @ G @ w), (fw, w)
    return (w[:, None] * grads).sum(0), w


def imtl_g(grads):
    grads_unit = grads / np.linalg.norm(grads, axis=-1, keepdims=True)
    D = grads[0:1] - grads[1:]
    U = grads_unit[0:1] - grads_unit[1:]
    alpha = grads[0] @ U.T @ np.linalg.inv(D @ U.T)
    alpha = np.concatenate(([1 - alpha.sum()], alpha))
    new = (alpha[:, None] * grads).sum(0)
    # IMTL-G's property: equal projections of the update on every unit gradient.
    proj = grads_unit @ new
    assert np.allclose(proj, proj[0]), proj
    return new, alpha


def case(rng, k, dim, conflict):
    grads = rng.normal(size=(k, dim)) * rng.uniform(0.2, 3.0, size=(k, 1))
    if conflict:  # make task 1 oppose task 0 in part
        grads[1] -= 1.5 * grads[0]
    losses = rng.uniform(0.1, 2.5, size=k)
    out = {"tasks": k, "grads": grads.tolist(), "losses": losses.tolist()}

    normals = rng.normal(size=k)
    out["rlw"] = {"normals": normals.tolist(), "weights": softmax(normals).tolist()}

    last, before = rng.uniform(0.3, 2.0, size=k), rng.uniform(0.3, 2.0, size=k)
    out["dwa"] = {"last": last.tolist(), "before_last": before.tolist(), "temperature": 2.0,
                  "weights": dwa(last, before, 2.0).tolist()}

    s = rng.normal(scale=0.5, size=k)
    w_uw, g_uw = uncertainty(s, losses)
    m, v, t = np.zeros(k), np.zeros(k), 0
    s1, m, v, t = adam_step(s, g_uw, m, v, t, 0.01, 0.0)
    _, g2 = uncertainty(s1, losses * 0.9)
    s2, m, v, t = adam_step(s1, g2, m, v, t, 0.01, 0.0)
    out["uncertainty"] = {"log_var": s.tolist(), "weights": w_uw.tolist(), "lr": 0.01,
                          "after_two_steps": s2.tolist(), "second_losses_scale": 0.9}

    logits = rng.normal(scale=0.3, size=k)
    prev = losses * rng.uniform(0.8, 1.3, size=k)
    m, v, t = np.zeros(k), np.zeros(k), 0
    new_logits, famo_w = famo(logits, prev, losses, 0.025, 0.001, m, v, t)
    out["famo"] = {"logits": logits.tolist(), "previous": prev.tolist(), "lr": 0.025,
                   "weight_decay": 0.001, "new_logits": new_logits.tolist(),
                   "weights": famo_w.tolist(),
                   "gradient": (famo_w[:, None] * grads).sum(0).tolist()}

    scale = rng.normal(scale=0.3, size=k)
    initial = losses * rng.uniform(1.0, 3.0, size=k)
    out["gradnorm"] = []
    for alpha in [0.0, 1.5, 4.0]:  # the targets move with alpha: the signs below change
        w_gn, ds, g_gn = gradnorm(grads, losses, initial, scale, alpha)
        out["gradnorm"].append({"scale_logits": scale.tolist(), "initial": initial.tolist(),
                                "alpha": alpha, "weights": w_gn.tolist(),
                                "scale_gradient": ds.tolist(), "gradient": g_gn.tolist()})

    orders = [rng.permutation(k).tolist() for _ in range(k)]
    g_pc, bw = pcgrad(grads, orders)
    out["pcgrad"] = {"orders": orders, "gradient": g_pc.tolist(), "weights": bw.tolist()}

    out["cagrad"] = []
    for c, rescale in [(0.4, 1), (0.9, 2), (0.0, 0)]:
        g_ca, w_ca = cagrad(grads, c, rescale)
        out["cagrad"].append({"c": c, "rescale": rescale, "gradient": g_ca.tolist(),
                              "inner": w_ca.tolist()})

    g_mg, w_mg = mgda(grads)
    out["mgda"] = {"gradient": g_mg.tolist(), "weights": w_mg.tolist()}

    g_im, a_im = imtl_g(grads)
    out["imtl"] = {"gradient": g_im.tolist(), "weights": a_im.tolist()}
    return out


def main():
    rng = np.random.default_rng(13)
    cases = [case(rng, 2, 7, False), case(rng, 2, 11, True), case(rng, 3, 13, True),
             case(rng, 4, 17, False), case(rng, 5, 6, True)]
    OUT.write_text(json.dumps({"cases": cases}) + "\n")
    print(f"wrote {OUT} ({len(cases)} cases)")


if __name__ == "__main__":
    main()
