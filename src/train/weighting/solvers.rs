//! The small problems gradient methods solve on the host, in f64, from the tasks' Gram
//! matrix `G[i][j] = <g_i, g_j>` (K x K, K the number of tasks): the projection onto the
//! probability simplex, MGDA's min-norm point (exact: every support is tried), CAGrad's
//! inner problem (projected gradient descent with backtracking) and a dense linear solve.

/// A K x K matrix, row-major.
pub type Matrix = Vec<Vec<f64>>;

/// `G x`.
pub fn mat_vec(g: &Matrix, x: &[f64]) -> Vec<f64> {
    g.iter()
        .map(|row| row.iter().zip(x).map(|(a, b)| a * b).sum())
        .collect()
}

/// `x^T G y`.
pub fn quad(g: &Matrix, x: &[f64], y: &[f64]) -> f64 {
    x.iter().zip(mat_vec(g, y)).map(|(a, b)| a * b).sum()
}

/// The Euclidean projection of `v` onto {w >= 0, sum w = 1} (Held et al.; Duchi et al. 2008).
pub fn project_to_simplex(v: &[f64]) -> Vec<f64> {
    let mut u = v.to_vec();
    u.sort_by(|a, b| b.total_cmp(a));
    let mut cumulative = 0.0;
    let mut theta = 0.0;
    for (i, &ui) in u.iter().enumerate() {
        cumulative += ui;
        let t = (cumulative - 1.0) / (i + 1) as f64;
        if ui - t > 0.0 {
            theta = t;
        }
    }
    v.iter().map(|&x| (x - theta).max(0.0)).collect()
}

/// Solves `a x = b` by Gaussian elimination with partial pivoting; `None` when `a` is
/// singular (a pivot below `1e-12` times the largest entry).
pub fn solve(a: &Matrix, b: &[f64]) -> Option<Vec<f64>> {
    let n = b.len();
    let scale = a
        .iter()
        .flatten()
        .fold(0.0f64, |m, &x| m.max(x.abs()))
        .max(f64::MIN_POSITIVE);
    let mut m: Vec<Vec<f64>> = a
        .iter()
        .zip(b)
        .map(|(row, &bi)| {
            let mut r = row.clone();
            r.push(bi);
            r
        })
        .collect();
    for col in 0..n {
        let pivot = (col..n).max_by(|&i, &j| m[i][col].abs().total_cmp(&m[j][col].abs()))?;
        if m[pivot][col].abs() <= 1e-12 * scale {
            return None;
        }
        m.swap(col, pivot);
        let (above, below) = m.split_at_mut(col + 1);
        let pivot_row = &above[col];
        for row in below.iter_mut() {
            let f = row[col] / pivot_row[col];
            for (x, p) in row.iter_mut().zip(pivot_row).skip(col) {
                *x -= f * p;
            }
        }
    }
    let mut x = vec![0.0; n];
    for row in (0..n).rev() {
        let s: f64 = (row + 1..n).map(|k| m[row][k] * x[k]).sum();
        x[row] = (m[row][n] - s) / m[row][row];
    }
    Some(x)
}

/// Tasks up to which [`min_norm_point`] tries every support (2^K subsets).
pub const MAX_EXACT_TASKS: usize = 16;

/// MGDA's min-norm point: the `w` on the simplex minimising `|sum_i w_i g_i|^2 = w^T G w`.
/// For each support S the equality-constrained optimum solves `G_S w_S = mu 1, sum w_S = 1`;
/// the best feasible one over all supports is the answer (the problem is convex, and an
/// optimum with a non-singular support always exists). Exact, unlike the Frank-Wolfe
/// iterations of Sener and Koltun's solver, which approach the same point.
pub fn min_norm_point(g: &Matrix) -> Vec<f64> {
    let k = g.len();
    assert!(
        (1..=MAX_EXACT_TASKS).contains(&k),
        "min-norm point of {k} tasks"
    );
    let mut best: Option<(f64, Vec<f64>)> = None;
    for mask in 1u32..(1 << k) {
        let support: Vec<usize> = (0..k).filter(|&i| mask & (1 << i) != 0).collect();
        let n = support.len();
        // [G_S  -1] [w]   [0]
        // [1^T   0] [mu] = [1]
        let mut a = vec![vec![0.0; n + 1]; n + 1];
        let mut b = vec![0.0; n + 1];
        for (r, &i) in support.iter().enumerate() {
            for (c, &j) in support.iter().enumerate() {
                a[r][c] = g[i][j];
            }
            a[r][n] = -1.0;
            a[n][r] = 1.0;
        }
        b[n] = 1.0;
        let Some(x) = solve(&a, &b) else { continue };
        if x[..n].iter().any(|&w| w < -1e-12) {
            continue;
        }
        let mut w = vec![0.0; k];
        for (r, &i) in support.iter().enumerate() {
            w[i] = x[r].max(0.0);
        }
        let total: f64 = w.iter().sum();
        w.iter_mut().for_each(|x| *x /= total);
        let value = quad(g, &w, &w);
        if best
            .as_ref()
            .is_none_or(|(v, _)| value < *v - 1e-15 * v.abs())
        {
            best = Some((value, w));
        }
    }
    best.map(|(_, w)| w)
        .unwrap_or_else(|| vec![1.0 / k as f64; k])
}

/// CAGrad's inner problem (Liu et al. 2021, as LibMTL writes it): minimise over the simplex
/// `F(w) = w^T G b + c sqrt(w^T G w + 1e-8)` with `b` uniform (1/K) and `c` the already
/// scaled radius (`c_opt * |g_0| + 1e-8`). Projected gradient descent from the uniform
/// point with a backtracking (Armijo) step, until a step moves `w` by less than 1e-13.
pub fn cagrad_inner(g: &Matrix, c: f64) -> Vec<f64> {
    let k = g.len();
    let b = vec![1.0 / k as f64; k];
    let gb = mat_vec(g, &b);
    let objective = |w: &[f64]| -> f64 {
        let lin: f64 = w.iter().zip(&gb).map(|(a, b)| a * b).sum();
        lin + c * (quad(g, w, w) + 1e-8).sqrt()
    };
    let gradient = |w: &[f64]| -> Vec<f64> {
        let gw = mat_vec(g, w);
        let norm = (quad(g, w, w) + 1e-8).sqrt();
        gb.iter()
            .zip(&gw)
            .map(|(lin, q)| lin + c * q / norm)
            .collect()
    };
    let mut w = b.clone();
    let mut value = objective(&w);
    let scale = g.iter().flatten().fold(0.0f64, |m, &x| m.max(x.abs()));
    let mut step = if scale > 0.0 { 1.0 / scale } else { 1.0 };
    for _ in 0..20_000 {
        let grad = gradient(&w);
        let mut moved = false;
        for _ in 0..60 {
            let candidate: Vec<f64> = w.iter().zip(&grad).map(|(x, d)| x - step * d).collect();
            let next = project_to_simplex(&candidate);
            let decrease: f64 = grad
                .iter()
                .zip(&next)
                .zip(&w)
                .map(|((d, n), x)| d * (n - x))
                .sum();
            let dist2: f64 = next.iter().zip(&w).map(|(n, x)| (n - x) * (n - x)).sum();
            let next_value = objective(&next);
            if next_value <= value + decrease + dist2 / (2.0 * step) {
                let change = dist2.sqrt();
                w = next;
                value = next_value;
                moved = change > 1e-13;
                step *= 2.0;
                break;
            }
            step *= 0.5;
        }
        if !moved {
            break;
        }
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gram(vectors: &[Vec<f64>]) -> Matrix {
        vectors
            .iter()
            .map(|a| {
                vectors
                    .iter()
                    .map(|b| a.iter().zip(b).map(|(x, y)| x * y).sum())
                    .collect()
            })
            .collect()
    }

    fn close(a: &[f64], b: &[f64], tol: f64) {
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() <= tol, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn projection_onto_the_simplex() {
        close(
            &project_to_simplex(&[0.2, 0.3, 0.5]),
            &[0.2, 0.3, 0.5],
            1e-15,
        );
        close(&project_to_simplex(&[2.0, 0.0]), &[1.0, 0.0], 1e-15);
        close(
            &project_to_simplex(&[1.0, 1.0, -3.0]),
            &[0.5, 0.5, 0.0],
            1e-15,
        );
    }

    #[test]
    fn min_norm_of_two_gradients_has_the_closed_form() {
        // Sener and Koltun's two-task solution: w = clip(<g2 - g1, g2> / |g1 - g2|^2, 0, 1).
        let g1 = vec![1.0, 0.0, 2.0];
        let g2 = vec![-1.0, 1.0, 0.5];
        let d: Vec<f64> = g2.iter().zip(&g1).map(|(a, b)| a - b).collect();
        let w1 = (d.iter().zip(&g2).map(|(a, b)| a * b).sum::<f64>()
            / d.iter().map(|x| x * x).sum::<f64>())
        .clamp(0.0, 1.0);
        close(&min_norm_point(&gram(&[g1, g2])), &[w1, 1.0 - w1], 1e-12);
    }

    #[test]
    fn min_norm_point_known_answers() {
        // Orthonormal gradients: the centre.
        let e = |i: usize| (0..3).map(|j| (i == j) as u8 as f64).collect::<Vec<_>>();
        close(
            &min_norm_point(&gram(&[e(0), e(1), e(2)])),
            &[1.0 / 3.0; 3],
            1e-12,
        );
        // One gradient inside the others' hull... a zero gradient: all weight on it.
        close(
            &min_norm_point(&gram(&[vec![1.0, 1.0], vec![0.0, 0.0], vec![3.0, -1.0]])),
            &[0.0, 1.0, 0.0],
            1e-12,
        );
        // Opposite gradients: the origin lies between them.
        close(
            &min_norm_point(&gram(&[vec![2.0, 0.0], vec![-1.0, 0.0]])),
            &[1.0 / 3.0, 2.0 / 3.0],
            1e-12,
        );
        // A gradient that is a convex combination's dominating point: a vertex.
        close(
            &min_norm_point(&gram(&[vec![1.0, 0.0], vec![5.0, 0.0]])),
            &[1.0, 0.0],
            1e-12,
        );
    }

    #[test]
    fn cagrad_inner_known_answers() {
        // c = 0: a linear objective, minimised at the vertex with the smallest (G b)_i.
        let g = gram(&[vec![1.0, 0.0], vec![0.5, 2.0], vec![-0.2, 0.1]]);
        close(&cagrad_inner(&g, 0.0), &[0.0, 0.0, 1.0], 1e-9);
        // Symmetric tasks: the symmetric point.
        let g = gram(&[vec![1.0, 0.0], vec![0.0, 1.0]]);
        close(&cagrad_inner(&g, 0.7), &[0.5, 0.5], 1e-9);
        // Against a fine grid on three tasks.
        let g = gram(&[
            vec![1.0, 0.3, 0.0],
            vec![-0.4, 1.2, 0.5],
            vec![0.2, -0.9, 1.1],
        ]);
        let c = 0.8;
        let f = |w: &[f64]| {
            let b = [1.0 / 3.0; 3];
            quad(&g, w, &b) + c * (quad(&g, w, w) + 1e-8).sqrt()
        };
        let w = cagrad_inner(&g, c);
        let n = 400;
        let mut best = f64::INFINITY;
        for i in 0..=n {
            for j in 0..=n - i {
                let p = [
                    i as f64 / n as f64,
                    j as f64 / n as f64,
                    (n - i - j) as f64 / n as f64,
                ];
                best = best.min(f(&p));
            }
        }
        assert!(f(&w) <= best + 1e-12, "{} vs grid {}", f(&w), best);
    }

    #[test]
    fn solve_finds_x_and_refuses_singular_systems() {
        let a = vec![vec![2.0, 1.0], vec![1.0, 3.0]];
        close(&solve(&a, &[3.0, 5.0]).unwrap(), &[0.8, 1.4], 1e-14);
        assert!(solve(&vec![vec![1.0, 2.0], vec![2.0, 4.0]], &[1.0, 2.0]).is_none());
    }
}
