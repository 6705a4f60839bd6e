//! Strided block copy (`ops::copy`) against a host copy, straight and transposed: awkward
//! sizes, the layouts of the key/value cache append and of the tied projection's d(logits),
//! and blocks that do not fit.

use taskgate::ops::copy::{Block, Repeat, copy_block, copy_blocks, transpose_block};

use crate::common::*;

/// One block: (rows, cols, src_ld, src_offset, dst_ld, dst_offset, dst_len).
type Case = (usize, usize, usize, usize, usize, usize, usize);

/// Copies `case`'s block of random values (seeded by `seed`), straight or transposed, into
/// a destination filled with -7, and compares the whole destination with a host copy.
fn matches_host(case: Case, seed: u64, transpose: bool) {
    let (rows, cols, sld, soff, dld, doff, dlen) = case;
    let src: Vec<f32> = uniform(&mut rng(seed), soff + rows * sld, -1.0, 1.0);
    let dst0 = vec![-7.0f32; dlen];
    let dst = upload(&dst0, &[dlen]);
    let at = |ld, offset| Block { ld, offset };
    let copy = if transpose {
        transpose_block
    } else {
        copy_block
    };
    copy(
        &upload(&src, &[src.len()]),
        at(sld, soff),
        &dst,
        at(dld, doff),
        rows,
        cols,
    )
    .unwrap();
    let mut want = dst0.clone();
    for r in 0..rows {
        for c in 0..cols {
            let to = if transpose { c * dld + r } else { r * dld + c };
            want[doff + to] = src[soff + r * sld + c];
        }
    }
    assert_eq!(
        download(&dst),
        want,
        "rows{rows} cols{cols} transpose {transpose}"
    );
}

#[test]
fn block_copy_matches_host_copy() {
    for case in [
        (1, 1, 1, 0, 1, 0, 1),
        (3, 5, 7, 2, 11, 4, 40),
        // the cache append: B = 2 rows of keys|values (2d = 8) from [B, 3d = 12] at column
        // d = 4, into row t = 2 of each sequence of a [B * 5, 8] cache.
        (2, 8, 12, 4, 40, 16, 80),
        (13, 257, 300, 17, 263, 1, 13 * 263 + 1),
    ] {
        matches_host(case, case.0 as u64, false);
    }
}

#[test]
fn blocks_that_do_not_fit_are_refused() {
    let src = upload(&[0.0; 12], &[12]);
    let dst = upload(&[0.0; 12], &[12]);
    let at = |ld, offset| Block { ld, offset };
    assert!(copy_block(&src, at(4, 0), &dst, at(4, 1), 3, 4).is_err());
    assert!(copy_block(&src, at(3, 0), &dst, at(4, 0), 3, 4).is_err());
    assert!(copy_block(&src, at(4, 0), &dst, at(4, 0), 3, 4).is_ok());
}

#[test]
fn transposed_copy_matches_host_transpose() {
    for case in [
        (1, 1, 1, 0, 1, 0, 1),
        (1, 7, 7, 0, 1, 0, 7),
        (7, 1, 1, 0, 7, 0, 7),
        // the tied projection: d(logits) [13, 61] into [61, 16] (rows padded to 4).
        (13, 61, 61, 0, 16, 0, 61 * 16),
        (5, 257, 263, 3, 11, 2, 257 * 11 + 2),
    ] {
        matches_host(case, case.1 as u64, true);
    }
}

#[test]
fn transposed_blocks_that_do_not_fit_are_refused() {
    let src = upload(&[0.0; 12], &[12]);
    let dst = upload(&[0.0; 12], &[12]);
    let at = |ld, offset| Block { ld, offset };
    // 2 x 6 into 6 x 2: fits with ld 2, not with ld 1 (rows > ld) or one element further.
    assert!(transpose_block(&src, at(6, 0), &dst, at(2, 0), 2, 6).is_ok());
    assert!(transpose_block(&src, at(6, 0), &dst, at(1, 0), 2, 6).is_err());
    assert!(transpose_block(&src, at(6, 0), &dst, at(2, 1), 2, 6).is_err());
}

#[test]
fn repeated_blocks_match_host_copies() {
    // The tied projection's cut: d(logits) [n = 3, V = 23] in 5 slices of 4 columns, each
    // transposed to [4, n4 = 4] side by side in [4, 20]; and a straight repeat.
    let (n, vocab, slices, part, n4) = (3, 23, 5, 4, 4);
    let src: Vec<f32> = uniform(&mut rng(9), n * vocab, -1.0, 1.0);
    for transpose in [true, false] {
        let (dst_ld, dst_stride) = if transpose {
            (slices * n4, n4)
        } else {
            (part + 1, n * (part + 1))
        };
        let len = if transpose {
            part * dst_ld
        } else {
            slices * dst_stride
        };
        let dst0 = vec![-7.0f32; len];
        let dst = upload(&dst0, &[len]);
        let repeat = Repeat {
            count: slices,
            src_stride: part,
            dst_stride,
        };
        let at = |ld, offset| Block { ld, offset };
        copy_blocks(
            &upload(&src, &[src.len()]),
            at(vocab, 0),
            &dst,
            at(dst_ld, 0),
            n,
            part,
            repeat,
            transpose,
        )
        .unwrap();
        let mut want = dst0.clone();
        for b in 0..slices {
            for r in 0..n {
                for c in 0..part {
                    let to = if transpose {
                        b * dst_stride + c * dst_ld + r
                    } else {
                        b * dst_stride + r * dst_ld + c
                    };
                    want[to] = src[b * part + r * vocab + c];
                }
            }
        }
        assert_eq!(download(&dst), want, "transpose {transpose}");
        // One more block reaches past the destination.
        let more = Repeat {
            count: slices + 1,
            ..repeat
        };
        let bad = copy_blocks(
            &upload(&src, &[src.len()]),
            at(vocab, 0),
            &dst,
            at(dst_ld, 0),
            n,
            part,
            more,
            transpose,
        );
        assert!(bad.is_err(), "transpose {transpose}");
    }
}
