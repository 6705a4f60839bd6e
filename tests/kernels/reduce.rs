//! Column sums (one and several passes, accumulate), full sums / sums of squares and inner
//! products (of whole tensors and of views at an offset).
//! Tolerance: 1e-6 * (1 + sqrt(n)) absolute + 1e-6 relative.

use taskgate::ops::reduce::{colsum, colsum_into, dot, sum, sum_squares};

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

#[test]
fn inner_products_match_reference() {
    for &n in &[1usize, 63, 64, 1000, 1_000_003] {
        let x = uniform(&mut rng(n as u64), n, -1.0, 1.0);
        let y = uniform(&mut rng(n as u64 + 1), n, -1.0, 1.0);
        let want = taskgate::reference::dot(&to_f64(&x), &to_f64(&y));
        let tol = 1e-6 * (1.0 + (n as f64).sqrt());
        let got = download(&dot(&upload(&x, &[n]), &upload(&y, &[n])).unwrap());
        assert_close(&format!("dot n{n}"), &got, &[want], tol, 1e-6);
    }
    // Views 256 bytes into their buffers, of a prime length (as a task gradient's segment).
    let (offset, n) = (64, 997);
    let x = uniform(&mut rng(5), offset + n + 3, -1.0, 1.0);
    let y = uniform(&mut rng(6), offset + n + 3, -1.0, 1.0);
    let (tx, ty) = (upload(&x, &[x.len()]), upload(&y, &[y.len()]));
    let got = dot(
        &tx.view(offset, &[n]).unwrap(),
        &ty.view(offset, &[n]).unwrap(),
    )
    .unwrap();
    let want = taskgate::reference::dot(
        &to_f64(&x[offset..offset + n]),
        &to_f64(&y[offset..offset + n]),
    );
    assert_close("dot of views", &download(&got), &[want], 1e-5, 1e-6);
    // Different lengths are refused.
    assert!(dot(&upload(&x[..3], &[3]), &upload(&y[..4], &[4])).is_err());
}
