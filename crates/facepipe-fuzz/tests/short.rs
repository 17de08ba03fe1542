//! The short fuzz pass `make test` runs: a few thousand mutants per target, none may panic.
//! (`make fuzz` runs 10⁶ per target.)

use std::time::Duration;

#[test]
fn no_reader_panics_on_mutated_inputs() {
    for t in &facepipe_fuzz::TARGETS {
        let s = facepipe_fuzz::run(t, 3000, Duration::from_secs(60), 7);
        assert!(s.inputs >= 500, "{}: only {} inputs ran", t.name, s.inputs);
        assert!(
            s.accepted >= 1,
            "{}: no input was accepted, the seeds are broken",
            t.name
        );
        assert!(
            s.panics.is_empty(),
            "{}: {} inputs panicked, first: {:?} on {:?}",
            t.name,
            s.panic_count,
            s.panics[0].1,
            String::from_utf8_lossy(&s.panics[0].0)
        );
    }
}

#[test]
fn mutation_is_seeded() {
    let seeds = vec![b"hello world".to_vec()];
    let go = || {
        let mut rng = facepipe_core::rng::SplitMix64::new(3);
        let mut v = seeds[0].clone();
        for _ in 0..50 {
            facepipe_fuzz::mutate(&mut rng, &mut v, &seeds);
        }
        v
    };
    assert_eq!(go(), go());
    assert_ne!(go(), seeds[0]);
}

#[test]
fn a_panicking_reader_is_caught_and_its_input_kept() {
    let t = facepipe_fuzz::Target {
        name: "broken",
        what: "a reader that panics on a 0xff byte",
        seeds: facepipe_fuzz::seeds::xml,
        read: |b, _| {
            assert!(!b.contains(&0xff), "found 0xff");
            Ok(())
        },
    };
    let s = facepipe_fuzz::run(&t, 2000, Duration::from_secs(60), 1);
    assert_eq!(s.inputs, 2000, "a panic does not stop the run");
    assert!(s.panic_count > 0 && s.panics[0].0.contains(&0xff), "{s:?}");
    assert!(s.panics[0].1.contains("found 0xff"));
}
