//! Column sums (one and several passes, accumulate) and full sums / sums of squares.
//! Tolerance: 1e-6 * (1 + sqrt(n)) absolute + 1e-6 relative.

use taskgate::ops::reduce::{colsum, colsum_into, sum, sum_squares};

use crate::common::*;

#[test]
fn column_sums_match_reference() {
    // rows past one 64-row chunk (two passes) and past 64 chunks (three passes)
    for (i, &(rows, cols)) in [(1, 1), (7, 3), (65, 5), (5000, 3), (200, 384)]
        .iter()
        .enumerate()
    {
        let x = uniform(&mut rng(i as u64), rows * cols, -1.0, 1.0);
        let want = taskgate::reference::colsum(&to_f64(&x), cols);
        let got = download(&colsum(&upload(&x, &[rows, cols])).unwrap());
        assert_close(
            &format!("colsum rows{rows} cols{cols}"),
            &got,
            &want,
            1e-6 * (1.0 + (rows as f64).sqrt()),
            1e-6,
        );
        let out = upload(&vec![1.0; cols], &[cols]);
        colsum_into(&upload(&x, &[rows, cols]), &out, true).unwrap();
        let want: Vec<f64> = want.iter().map(|v| v + 1.0).collect();
        assert_close(
            &format!("colsum accumulate rows{rows} cols{cols}"),
            &download(&out),
            &want,
            1e-6 * (1.0 + (rows as f64).sqrt()),
            1e-6,
        );
    }
}

#[test]
fn sums_and_sums_of_squares_match_reference() {
    for &n in &[1usize, 63, 1000, 1_000_003] {
        let x = uniform(&mut rng(n as u64), n, -1.0, 1.0);
        let t = upload(&x, &[n]);
        let s: f64 = x.iter().map(|&v| v as f64).sum();
        let q: f64 = x.iter().map(|&v| (v as f64).powi(2)).sum();
        let tol = 1e-6 * (1.0 + (n as f64).sqrt());
        assert_close(
            &format!("sum n{n}"),
            &download(&sum(&t).unwrap()),
            &[s],
            tol,
            1e-6,
        );
        assert_close(
            &format!("sum of squares n{n}"),
            &download(&sum_squares(&t).unwrap()),
            &[q],
            tol,
            1e-6,
        );
    }
}
