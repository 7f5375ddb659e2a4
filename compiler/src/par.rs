//! A parallel map over a slice on scoped threads, for the phases that do the same work per file
//! or per sidecar. Results come back in input order, so output stays deterministic.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Stack size of worker threads: the YAML parser and Cedar recurse on nested input, and the
/// depth budgets must be what stops deep input, not the stack.
pub const WORKER_STACK: usize = 256 << 20;

/// Map `f` over `items` on up to `threads` threads (at least one), each taking the next unclaimed
/// item. Falls back to the calling thread for anything no worker could take (a thread that
/// cannot be spawned). A panic in `f` is resumed on the caller.
pub fn map<T: Sync, R: Send>(items: &[T], threads: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let workers = threads.min(items.len()).max(1);
    if workers == 1 {
        return items.iter().map(&f).collect();
    }
    let next = AtomicUsize::new(0);
    let collected: Vec<(usize, R)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .filter_map(|_| {
                std::thread::Builder::new()
                    .stack_size(WORKER_STACK)
                    .spawn_scoped(s, || {
                        let mut mine = Vec::new();
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let Some(item) = items.get(i) else { break };
                            mine.push((i, f(item)));
                        }
                        mine
                    })
                    .ok()
            })
            .collect();
        let mut all = Vec::with_capacity(items.len());
        for h in handles {
            match h.join() {
                Ok(v) => all.extend(v),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        all
    });
    let mut results: Vec<Option<R>> = (0..items.len()).map(|_| None).collect();
    for (i, r) in collected {
        if let Some(slot) = results.get_mut(i) {
            *slot = Some(r);
        }
    }
    results
        .into_iter()
        .zip(items)
        .map(|(r, item)| r.unwrap_or_else(|| f(item)))
        .collect()
}

/// The number of threads to use for CPU-bound work.
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    #[test]
    fn keeps_input_order_and_covers_every_item() {
        let items: Vec<u32> = (0..1000).collect();
        for threads in [1, 2, 7] {
            let out = super::map(&items, threads, |x| x * 2);
            assert_eq!(out, items.iter().map(|x| x * 2).collect::<Vec<_>>());
        }
        assert!(super::map(&[] as &[u32], 4, |x| *x).is_empty());
    }

    #[test]
    fn a_panic_reaches_the_caller() {
        let r = std::panic::catch_unwind(|| {
            super::map(&[1, 2, 3], 2, |x| {
                assert_ne!(*x, 2, "boom");
                *x
            })
        });
        assert!(r.is_err());
    }
}
